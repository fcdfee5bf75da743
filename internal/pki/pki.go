// Package pki issues the small certificate authorities and leaf certificates
// that the demo needs outside a cluster: the localca tool uses it for
// `make run-local-mtls`, and the tests use it to build CAs on the fly. It also
// writes certificate directories the way the cert-manager CSI driver and
// Kubernetes secret volumes do, so that reload code is exercised against the
// real on-disk layout rather than a simplified one.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// KeyType picks the leaf key algorithm. ECDSA P-256 is what the CSI driver
// issues by default; RSA exists so the handshake cost can be compared.
type KeyType string

// Key types understood by Issue.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
)

// CA is a self-signed issuer held in memory. Keeping the key in memory (and
// only optionally on disk) mirrors a cert-manager CA issuer while staying
// disposable.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// Leaf is an issued certificate with its private key, both PEM-encoded as
// they appear in tls.crt and tls.key.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// TLSCertificate is the leaf as a crypto/tls certificate, ready for a
// server's or client's tls.Config.
func (l *Leaf) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(l.CertPEM, l.KeyPEM)
}

// LeafSpec describes the identity and lifetime of a leaf. Zero times mean
// "valid from one minute ago for 24 hours", which suits tests and local runs.
type LeafSpec struct {
	CommonName string
	URIs       []string
	DNSNames   []string
	IPs        []net.IP
	NotBefore  time.Time
	NotAfter   time.Time
	KeyType    KeyType
	// Usages defaults to both server and client auth, because every demo app
	// is a server to one peer and a client to the next.
	Usages []x509.ExtKeyUsage
}

// NewCA creates a self-signed ECDSA P-256 CA valid from one minute ago for
// the given lifetime.
func NewCA(commonName string, lifetime time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA %q: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der)}, nil
}

// LoadCA reads a CA written by SaveCA, so a local run keeps one CA across
// restarts of the localca tool.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", certFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", certFile, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%s: no PEM key block", keyFile)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", keyFile, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", keyFile, parsed)
	}
	return &CA{Cert: cert, Key: signer, CertPEM: certPEM}, nil
}

// SaveCA writes the CA certificate and key (mode 0600) to disk.
func (ca *CA) SaveCA(certFile, keyFile string) error {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return fmt.Errorf("marshal CA key: %w", err)
	}
	if err := os.WriteFile(certFile, ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, pemBlock("PRIVATE KEY", der), 0o600); err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	return nil
}

// Issue signs a leaf certificate for spec.
func (ca *CA) Issue(spec LeafSpec) (*Leaf, error) {
	key, err := newKey(spec.KeyType)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	uris := make([]*url.URL, 0, len(spec.URIs))
	for _, u := range spec.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("URI SAN %q: %w", u, err)
		}
		uris = append(uris, parsed)
	}
	notBefore, notAfter := spec.NotBefore, spec.NotAfter
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Minute)
	}
	if notAfter.IsZero() {
		notAfter = notBefore.Add(24 * time.Hour)
	}
	usages := spec.Usages
	if usages == nil {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	keyUsage := x509.KeyUsageDigitalSignature
	if spec.KeyType == RSA2048 {
		keyUsage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     keyUsage,
		ExtKeyUsage:  usages,
		URIs:         uris,
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign leaf %q: %w", spec.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse leaf %q: %w", spec.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal leaf key: %w", err)
	}
	return &Leaf{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}, nil
}

// LoopbackServer is the spec of a serving certificate for a server on this
// machine (127.0.0.1 and localhost), the way the local control plane dials
// the webhook.
func LoopbackServer(commonName string) LeafSpec {
	return LeafSpec{CommonName: commonName, DNSNames: []string{"localhost"},
		IPs: []net.IP{net.ParseIP("127.0.0.1")}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
}

// WriteServingPair issues a LoopbackServer leaf from ca and writes it into
// dir as tls.crt and tls.key (0600), the files a server's --cert-dir holds.
func (ca *CA) WriteServingPair(dir, commonName string) (*Leaf, error) {
	leaf, err := ca.Issue(LoopbackServer(commonName))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{KeyName: leaf.KeyPEM, CertName: leaf.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return leaf, nil
}

// Pool returns a pool that trusts ca.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Bundle concatenates CA certificates into one ca.crt, the form a CA
// rollover takes: old and new CA side by side.
func Bundle(cas ...*CA) []byte {
	var out []byte
	for _, ca := range cas {
		out = append(out, ca.CertPEM...)
	}
	return out
}

// Files is the content of one certificate directory.
type Files struct {
	Cert []byte // tls.crt
	Key  []byte // tls.key
	CA   []byte // ca.crt
}

// File names inside a certificate directory, as the CSI driver writes them.
const (
	CertName = "tls.crt"
	KeyName  = "tls.key"
	CAName   = "ca.crt"
	dataLink = "..data"
)

// WriteAtomic publishes files into dir exactly like the Kubernetes atomic
// writer used by secret volumes and the CSI driver: the files go into a fresh
// timestamped directory, a temporary symlink to it is renamed over "..data"
// (one atomic rename), and the visible names are symlinks through "..data".
// A reader therefore sees either the complete old set or the complete new
// set, never a mix. The previous timestamped directory is removed afterwards.
func WriteAtomic(dir string, f Files) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	oldTarget, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s link: %w", dataLink, err)
	}
	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("create timestamped dir: %w", err)
	}
	for name, data := range map[string][]byte{CertName: f.Cert, KeyName: f.Key, CAName: f.CA} {
		mode := os.FileMode(0o644)
		if name == KeyName {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(tsDir, name), data, mode); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return fmt.Errorf("create %s: %w", tmpLink, err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataLink)); err != nil {
		return fmt.Errorf("swap %s: %w", dataLink, err)
	}
	for _, name := range []string{CertName, KeyName, CAName} {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, name), link); err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
	}
	if oldTarget != "" && strings.HasPrefix(oldTarget, "..") && oldTarget != filepath.Base(tsDir) {
		if err := os.RemoveAll(filepath.Join(dir, oldTarget)); err != nil {
			return fmt.Errorf("remove old %s: %w", oldTarget, err)
		}
	}
	return nil
}

func newKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case "", ECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ECDSA key: %w", err)
		}
		return k, nil
	case RSA2048:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("key type %q: want %q or %q", kt, ECDSAP256, RSA2048)
	}
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
