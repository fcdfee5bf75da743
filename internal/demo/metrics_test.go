package demo

import (
	"crypto/x509"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/app"
	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

// TestParseMetricsReadsWhatTheAppsServe serves a real demo app's metrics
// (its own registry, fed a certificate from the test PKI, a reload, a
// failed handshake and requests) and reads them back.
func TestParseMetricsReadsWhatTheAppsServe(t *testing.T) {
	ca, err := pki.NewCA("demo test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.LeafSpec{CommonName: "backend", URIs: []string{"spiffe://cluster.local/ns/demo/sa/backend"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pki.WriteAtomic(dir, pki.Files{Cert: leaf.CertPEM, Key: leaf.KeyPEM, CA: pki.Bundle(ca)}); err != nil {
		t.Fatal(err)
	}
	b, err := certs.Load(certs.Paths{Cert: filepath.Join(dir, pki.CertName), Key: filepath.Join(dir, pki.KeyName), CA: filepath.Join(dir, pki.CAName)})
	if err != nil {
		t.Fatal(err)
	}
	am := app.NewMetrics("backend")
	am.Loaded(b, true)
	am.Loaded(b, false)
	am.HandshakeFailed("no client certificate")
	am.Request("process", "ok")
	am.Request("process", "ok")
	am.Request("process", "forbidden")

	w := httptest.NewRecorder()
	am.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	m, err := ParseMetrics(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Serial != b.Serial || m.Identity != "spiffe://cluster.local/ns/demo/sa/backend" {
		t.Errorf("serial %q identity %q, want %q and the SPIFFE ID", m.Serial, m.Identity, b.Serial)
	}
	if !m.LeafNotAfter.Equal(b.Leaf.NotAfter.Truncate(time.Second)) {
		t.Errorf("leaf not after %s, want %s", m.LeafNotAfter, b.Leaf.NotAfter)
	}
	if m.Reloads != 1 || m.HandshakeFailures["no client certificate"] != 1 || m.Requests["ok"] != 2 || m.Requests["forbidden"] != 1 {
		t.Errorf("parsed %+v", m)
	}
	if _, err := ParseMetrics(strings.NewReader("mtls_cert_info{serial=\"x\" 1\n")); err == nil {
		t.Error("malformed text accepted")
	}
}
