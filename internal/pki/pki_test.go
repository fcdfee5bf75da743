package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The pair a local server's --cert-dir gets: readable only by its owner,
// a matching key, valid for 127.0.0.1 and localhost as a server, and
// trusted through the CA's pool.
func TestWriteServingPair(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	leaf, err := ca.WriteServingPair(dir, "srv")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CertName, KeyName} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertName), filepath.Join(dir, KeyName))
	if err != nil {
		t.Fatalf("written files are not a key pair: %v", err)
	}
	if pair.Leaf == nil || pair.Leaf.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Errorf("files hold another certificate than the one returned")
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("not a server certificate for %s from the CA: %v", host, err)
		}
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a serving certificate also works as a client certificate")
	}
}
