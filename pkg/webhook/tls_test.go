package webhook

import (
	"crypto/tls"
	"slices"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/pki"
	"github.com/mtls-demo/mtls-webhook/internal/testutil/tlsprobe"
)

// The webhook server's TLS options, applied to the configuration
// controller-runtime starts from (HTTP/2 offered, its certificate
// watcher's certificate), offer exactly the intermediate profile to real
// clients, and HTTP/1.1 only.
func TestServerTLSOffersTheIntermediateProfile(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			ca, err := pki.NewCA("webhook test CA", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			spec := pki.LoopbackServer("mtls-webhook")
			spec.KeyType = kt
			leaf, err := ca.Issue(spec)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := leaf.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			cfg := &tls.Config{
				NextProtos:     []string{"h2"},
				MinVersion:     tls.VersionTLS12,
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
			}
			serverTLS(cfg)
			if !slices.Equal(cfg.NextProtos, []string{"http/1.1"}) {
				t.Errorf("NextProtos %q, want HTTP/1.1 only", cfg.NextProtos)
			}
			tlsprobe.Check(t, tlsprobe.Server{Config: cfg, Cert: cert})
		})
	}
}
