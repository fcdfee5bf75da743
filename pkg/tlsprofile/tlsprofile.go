// Package tlsprofile is the one place that decides which TLS versions and
// cipher suites the webhook, the demo apps and the test clients offer.
//
// The choice is Mozilla's "intermediate" server-side TLS configuration,
// guideline version 5.7 (https://wiki.mozilla.org/Security/Server_Side_TLS):
// TLS 1.2 and 1.3 only, and in TLS 1.2 only ECDHE key exchange (forward
// secrecy) with an AEAD cipher, AES-GCM or ChaCha20-Poly1305. That drops
// what Go would otherwise still agree to in TLS 1.2: the CBC suites with
// HMAC-SHA1 or -SHA256 (ECDHE-ECDSA-AES128-SHA and friends; MAC-then-encrypt,
// the source of Lucky13-style padding oracles), and the static RSA key
// exchange when GODEBUG turns it back on. Mozilla's DHE-RSA suites are not
// listed because Go implements no finite-field DHE.
//
// TLS 1.3 needs nothing here: Go offers all three TLS 1.3 suites, all AEAD
// (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305), and does not let a config
// change them; Config.CipherSuites applies to TLS 1.2 and below only.
//
// Key exchange groups are left to Go on purpose (CurvePreferences stays
// nil). Go 1.26 offers the hybrid post-quantum X25519MLKEM768,
// SecP256r1MLKEM768 and SecP384r1MLKEM1024 first, then X25519, P-256, P-384
// and P-521. Mozilla's list is X25519, P-256 and P-384; writing it out would
// switch off the post-quantum hybrids, and even a list that named them would
// freeze today's set and ignore the GODEBUG switches (tlsmlkem,
// tlssecpmlkem) that operators use to adjust it. P-521, the one group Go
// offers beyond Mozilla's, has no known weakness.
package tlsprofile

import (
	"crypto/tls"
	"slices"
)

// MinVersion is the oldest protocol version offered: TLS 1.0 and 1.1 are
// deprecated (RFC 8996).
const MinVersion = tls.VersionTLS12

// cipherSuites are the TLS 1.2 suites of the intermediate profile, in
// Mozilla's order: ECDHE with AES-GCM or ChaCha20-Poly1305, for ECDSA and
// RSA certificates (the CSI driver issues either, mtls.demo/key-algorithm).
// Go orders them itself when it picks one.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 cipher suites of the profile. The slice
// is a copy; changing it changes nothing else.
func CipherSuites() []uint16 { return slices.Clone(cipherSuites) }

// Apply sets the profile's protocol versions and cipher suites on c, for a
// server or a client, and leaves every other field alone. A MinVersion
// above TLS 1.2 that c already has (a TLS 1.3-only config) is kept.
func Apply(c *tls.Config) {
	if c.MinVersion < MinVersion {
		c.MinVersion = MinVersion
	}
	c.CipherSuites = CipherSuites()
}

// Intermediate returns a new config holding only the profile, to be filled
// in with certificates and verification by the caller.
func Intermediate() *tls.Config {
	c := &tls.Config{}
	Apply(c)
	return c
}
