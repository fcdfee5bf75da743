package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

// testCA signs the webhook's serving certificates. The API server trusts it
// through the MutatingWebhookConfiguration's caBundle.
type testCA struct{ *pki.CA }

func newCA(cn string) (*testCA, error) {
	ca, err := pki.NewCA(cn, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &testCA{CA: ca}, nil
}

// servingCert is a leaf for 127.0.0.1 and localhost, the addresses the API
// server dials, with the CA that signed it.
type servingCert struct {
	ca      *testCA
	serial  *big.Int
	certPEM []byte
	keyPEM  []byte
}

func (ca *testCA) issue() (*servingCert, error) {
	leaf, err := ca.Issue(pki.LoopbackServer("mtls-webhook"))
	if err != nil {
		return nil, err
	}
	return &servingCert{ca: ca, serial: leaf.Cert.SerialNumber, certPEM: leaf.CertPEM, keyPEM: leaf.KeyPEM}, nil
}

func (s *servingCert) tlsCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(s.certPEM, s.keyPEM)
}

// writeServingCert issues a leaf from ca into dir as tls.crt / tls.key, the
// webhook's default --cert-name / --key-name.
func writeServingCert(dir string, ca *testCA) (*servingCert, error) {
	leaf, err := ca.issue()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return leaf, leaf.install(dir)
}

// install replaces tls.key then tls.crt, each by an atomic rename, the way
// a kubelet updates a projected Secret. A reader that catches the new key
// with the old certificate sees a mismatched pair and must keep serving the
// previous one until the certificate follows.
func (s *servingCert) install(dir string) error {
	for _, f := range []struct {
		name string
		data []byte
	}{{"tls.key", s.keyPEM}, {"tls.crt", s.certPEM}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// servedSerial dials addr (host:port) and returns the serial number of the
// leaf it presents, verified against roots.
func servedSerial(addr string, roots *x509.CertPool) (*big.Int, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s presented no certificate", addr)
	}
	return certs[0].SerialNumber, nil
}
