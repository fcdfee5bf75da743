package tlsprofile_test

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/pki"
	"github.com/mtls-demo/mtls-webhook/internal/testutil/tlsprobe"
	"github.com/mtls-demo/mtls-webhook/pkg/tlsprofile"
)

// serverCert issues a loopback serving certificate of the given key type.
func serverCert(t *testing.T, kt pki.KeyType) tls.Certificate {
	t.Helper()
	ca, err := pki.NewCA("tlsprofile test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	spec := pki.LoopbackServer("server")
	spec.KeyType = kt
	leaf, err := ca.Issue(spec)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestIntermediateServerHandshakes(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			cert := serverCert(t, kt)
			cfg := tlsprofile.Intermediate()
			cfg.Certificates = []tls.Certificate{cert}
			tlsprobe.Check(t, tlsprobe.Server{Config: cfg, Cert: cert})
		})
	}
}

// Every suite of the profile is ECDHE with an AEAD cipher, whatever the
// list says: a property check next to the handshakes.
func TestCipherSuitesAreECDHEAndAEAD(t *testing.T) {
	suites := tlsprofile.CipherSuites()
	if len(suites) != 6 {
		t.Errorf("%d suites, want the 6 ECDHE AES-GCM and ChaCha20-Poly1305 ones", len(suites))
	}
	for _, id := range suites {
		name := tls.CipherSuiteName(id)
		aead := strings.Contains(name, "_GCM_") || strings.Contains(name, "_CHACHA20_POLY1305_")
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !aead {
			t.Errorf("%s is not ECDHE with AES-GCM or ChaCha20-Poly1305", name)
		}
		if slices.ContainsFunc(tls.InsecureCipherSuites(), func(cs *tls.CipherSuite) bool { return cs.ID == id }) {
			t.Errorf("%s is on Go's insecure list", name)
		}
	}
	suites[0] = 0
	if tlsprofile.CipherSuites()[0] == 0 {
		t.Error("CipherSuites returned the package's own slice")
	}
}

func TestApplyKeepsTheRest(t *testing.T) {
	c := &tls.Config{ServerName: "x", NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS10}
	tlsprofile.Apply(c)
	if c.MinVersion != tls.VersionTLS12 || c.ServerName != "x" || len(c.NextProtos) != 1 || c.CurvePreferences != nil {
		t.Errorf("Apply: MinVersion %s, ServerName %q, NextProtos %v, CurvePreferences %v",
			tls.VersionName(c.MinVersion), c.ServerName, c.NextProtos, c.CurvePreferences)
	}
	c = &tls.Config{MinVersion: tls.VersionTLS13}
	tlsprofile.Apply(c)
	if c.MinVersion != tls.VersionTLS13 {
		t.Errorf("Apply lowered a TLS 1.3-only config to %s", tls.VersionName(c.MinVersion))
	}
}
