// Package certs loads the mounted certificate, key and CA bundle, keeps them
// fresh while the process runs, and builds the TLS configurations that read
// the freshest copy on every handshake.
//
// The design follows from how the cert-manager CSI driver delivers files: it
// rewrites the whole directory atomically (a "..data" symlink swap), often
// hours before the old certificate expires, and the application is expected
// to notice without restarting. A Source therefore parses a complete set once
// per change and publishes it through an atomic pointer; handshakes only load
// that pointer, so reloading costs the request path nothing. A set that does
// not parse, or whose key does not match the certificate, is refused and the
// previous set stays in service.
package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// Paths names the three mounted files. The webhook sets them through
// MTLS_CERT_FILE, MTLS_KEY_FILE and MTLS_CA_FILE.
type Paths struct {
	Cert string
	Key  string
	CA   string
}

// Bundle is one parsed, mutually consistent certificate set. It is immutable
// once published, so any number of handshakes may read it concurrently.
type Bundle struct {
	// Leaf is the first certificate of tls.crt, the one peers see.
	Leaf *x509.Certificate
	// Serial is Leaf's serial number in hex, the value logs and answers show
	// so a rotation can be followed from the outside.
	Serial string
	// Roots holds every CA in ca.crt; during a CA rollover it holds both.
	Roots *x509.CertPool
	// CAs lists the same CAs for reporting (expiry metrics).
	CAs []*x509.Certificate

	cert   *tls.Certificate
	digest [sha256.Size]byte
	server *tls.Config
}

// CANotAfter is the earliest expiry among the trusted CAs, the date by which
// a CA rollover must have happened.
func (b *Bundle) CANotAfter() time.Time {
	var first time.Time
	for _, ca := range b.CAs {
		if first.IsZero() || ca.NotAfter.Before(first) {
			first = ca.NotAfter
		}
	}
	return first
}

// LoadError explains why a certificate set was refused. Reason is a short
// fixed token suitable as a metric label; Err carries the detail.
type LoadError struct {
	Reason string
	Err    error
}

// Reasons a certificate set can be refused; they double as metric labels.
const (
	ReasonRead        = "read_error"
	ReasonCertParse   = "cert_parse_error"
	ReasonKeyParse    = "key_parse_error"
	ReasonKeyMismatch = "key_mismatch"
	ReasonCAParse     = "ca_parse_error"
	ReasonChain       = "leaf_not_signed_by_ca"
)

func (e *LoadError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// Reason extracts the metric label from an error returned by Load or Reload.
func Reason(err error) string {
	var le *LoadError
	if errors.As(err, &le) {
		return le.Reason
	}
	return "unknown"
}

type rawFiles struct{ cert, key, ca []byte }

func (r rawFiles) digest() [sha256.Size]byte {
	h := sha256.New()
	for _, part := range [][]byte{r.cert, r.key, r.ca} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	var d [sha256.Size]byte
	copy(d[:], h.Sum(nil))
	return d
}

func readFiles(p Paths) (rawFiles, error) {
	var r rawFiles
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{p.Cert, &r.cert}, {p.Key, &r.key}, {p.CA, &r.ca}} {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return r, &LoadError{Reason: ReasonRead, Err: explainRead(err, os.Getuid(), os.Getgid())}
		}
		*f.dst = data
	}
	return r, nil
}

// explainRead adds the usual cause to a permission error: the driver makes
// the files readable by root and the volume's fs-group only.
func explainRead(err error, uid, gid int) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return fmt.Errorf("%w (running as uid %d, gid %d; the CSI driver makes the files readable by root and the "+
		"volume's fs-group only: give the pod securityContext.fsGroup or runAsGroup, or set mtls.demo/fs-group)", err, uid, gid)
}

// Load reads and validates the set named by p once.
func Load(p Paths) (*Bundle, error) {
	raw, err := readFiles(p)
	if err != nil {
		return nil, err
	}
	return parse(raw)
}

func parse(raw rawFiles) (*Bundle, error) {
	chain, err := parseCerts(raw.cert)
	if err != nil {
		return nil, &LoadError{Reason: ReasonCertParse, Err: fmt.Errorf("tls.crt: %w", err)}
	}
	pair, err := tls.X509KeyPair(raw.cert, raw.key)
	if err != nil {
		reason := ReasonKeyParse
		if strings.Contains(err.Error(), "does not match") {
			reason = ReasonKeyMismatch
		}
		return nil, &LoadError{Reason: reason, Err: fmt.Errorf("tls.key: %w", err)}
	}
	pair.Leaf = chain[0]
	cas, err := parseCerts(raw.ca)
	if err != nil {
		return nil, &LoadError{Reason: ReasonCAParse, Err: fmt.Errorf("ca.crt: %w", err)}
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// The leaf must chain to the bundle it arrived with. Expiry is not judged
	// here (the check runs at the leaf's own start time): serving a stale
	// certificate is the peer's call to refuse, but a leaf from a foreign CA
	// means the files belong to different issuances.
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   chain[0].NotBefore.Add(time.Second),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, &LoadError{Reason: ReasonChain, Err: fmt.Errorf("tls.crt does not chain to ca.crt: %w", err)}
	}
	return &Bundle{
		Leaf:   chain[0],
		Serial: SerialHex(chain[0]),
		Roots:  roots,
		CAs:    cas,
		cert:   &pair,
		digest: raw.digest(),
	}, nil
}

// parseCerts decodes every CERTIFICATE block. Any trailing garbage (the sign
// of a file caught half-written) is an error rather than silently ignored.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%d bytes of trailing data after the last certificate (file truncated or half-written?)", len(rest))
	}
	return out, nil
}

// SerialHex renders a certificate serial the way openssl prints it, so the
// value in logs can be compared with `openssl x509 -serial`.
func SerialHex(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return strings.ToUpper(c.SerialNumber.Text(16))
}

// Identity names a peer: its first URI SAN (a SPIFFE ID under the CSI
// driver), else its subject common name.
func Identity(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return c.Subject.CommonName
}

// Identities lists every name a peer may be authorized under: all URI SANs,
// or the common name when the certificate carries no URI SAN. A certificate
// with URI SANs is never matched by its common name, which is free text.
func Identities(c *x509.Certificate) []string {
	if c == nil {
		return nil
	}
	if len(c.URIs) > 0 {
		out := make([]string, len(c.URIs))
		for i, u := range c.URIs {
			out[i] = u.String()
		}
		return out
	}
	if c.Subject.CommonName == "" {
		return nil
	}
	return []string{c.Subject.CommonName}
}
