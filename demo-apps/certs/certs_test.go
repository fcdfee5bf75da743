package certs_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

func setup(tb testing.TB) (*pki.CA, string, certs.Paths) {
	tb.Helper()
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	write(tb, ca, dir, leaf(tb, ca), ca)
	return ca, dir, certs.Paths{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt")}
}

func leaf(tb testing.TB, ca *pki.CA) *pki.Leaf {
	tb.Helper()
	l, err := ca.Issue(pki.LeafSpec{CommonName: "app", URIs: []string{"spiffe://cluster.local/ns/demo/sa/app"}})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func write(tb testing.TB, _ *pki.CA, dir string, l *pki.Leaf, cas ...*pki.CA) {
	tb.Helper()
	if err := pki.WriteAtomic(dir, pki.Files{Cert: l.CertPEM, Key: l.KeyPEM, CA: pki.Bundle(cas...)}); err != nil {
		tb.Fatal(err)
	}
}

type counter struct{ loaded, failed atomic.Int64 }

func (c *counter) Loaded(*certs.Bundle, bool) { c.loaded.Add(1) }
func (c *counter) ReloadFailed(string)        { c.failed.Add(1) }
func (c *counter) HandshakeFailed(string)     {}

func quiet() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// Each way a set can be inconsistent maps to its own reason.
func TestLoadRefusesInconsistentSets(t *testing.T) {
	ca, _, _ := setup(t)
	other, err := pki.NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, b := leaf(t, ca), leaf(t, ca)
	cases := map[string]struct {
		files pki.Files
		want  string
	}{
		"half-written cert": {pki.Files{Cert: a.CertPEM[:len(a.CertPEM)-40], Key: a.KeyPEM, CA: ca.CertPEM}, certs.ReasonCertParse},
		"key of another":    {pki.Files{Cert: a.CertPEM, Key: b.KeyPEM, CA: ca.CertPEM}, certs.ReasonKeyMismatch},
		"empty key":         {pki.Files{Cert: a.CertPEM, Key: nil, CA: ca.CertPEM}, certs.ReasonKeyParse},
		"garbage CA":        {pki.Files{Cert: a.CertPEM, Key: a.KeyPEM, CA: []byte("x")}, certs.ReasonCAParse},
		"leaf of other CA":  {pki.Files{Cert: a.CertPEM, Key: a.KeyPEM, CA: other.CertPEM}, certs.ReasonChain},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := pki.WriteAtomic(dir, tc.files); err != nil {
				t.Fatal(err)
			}
			_, err := certs.Load(certs.Paths{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt")})
			if got := certs.Reason(err); got != tc.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.want)
			}
		})
	}
	if _, err := certs.Load(certs.Paths{Cert: "/nonexistent/tls.crt"}); certs.Reason(err) != certs.ReasonRead {
		t.Fatalf("missing file: %v", err)
	}
}

// The directory watch alone (polling effectively off) picks up a "..data"
// symlink swap, and the swapped-in set is what handshakes use.
func TestWatchPicksUpSymlinkSwap(t *testing.T) {
	ca, dir, paths := setup(t)
	obs := &counter{}
	src, err := certs.NewSource(certs.Config{Paths: paths, Watch: true, PollInterval: time.Hour, Observer: obs, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx) }()
	time.Sleep(100 * time.Millisecond) // let the watch be established

	for i := range 3 {
		next := leaf(t, ca)
		write(t, ca, dir, next, ca)
		want := certs.SerialHex(next.Cert)
		deadline := time.Now().Add(5 * time.Second)
		for src.Current().Serial != want {
			if time.Now().After(deadline) {
				t.Fatalf("swap %d not picked up by the file watch", i+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cfg, err := src.ServerConfig().GetConfigForClient(&tls.ClientHelloInfo{})
		if err != nil || certs.SerialHex(cfg.Certificates[0].Leaf) != want {
			t.Fatalf("handshake config does not serve the new certificate")
		}
	}
	if obs.loaded.Load() != 4 || obs.failed.Load() != 0 {
		t.Fatalf("loaded %d failed %d, want 4 and 0", obs.loaded.Load(), obs.failed.Load())
	}
	// pki.WriteAtomic cleans up: one timestamped directory remains.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 5 { // ..data, one ..<timestamp>, three links
		t.Fatalf("%d entries in %s, want 5", len(entries), dir)
	}
}

// Without Watch nothing changes, however long we wait.
func TestNoWatchLoadsOnce(t *testing.T) {
	ca, dir, paths := setup(t)
	src, err := certs.NewSource(certs.Config{Paths: paths, Watch: false, PollInterval: 10 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	first := src.Current().Serial
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	write(t, ca, dir, leaf(t, ca), ca)
	_ = src.Run(ctx)
	if src.Current().Serial != first {
		t.Fatal("certificate changed with Watch off")
	}
}

// Handshake lookups are one atomic load: the cost a reload adds to the
// request path.
func BenchmarkGetConfigForClient(b *testing.B) {
	ca, dir, paths := setup(b)
	src, err := certs.NewSource(certs.Config{Paths: paths, Watch: true, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	get := src.ServerConfig().GetConfigForClient
	hello := &tls.ClientHelloInfo{}
	b.Run("steady", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := get(hello); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("while-reloading", func(b *testing.B) {
		// Another goroutine swaps between two sets as fast as it can.
		l1, l2 := leaf(b, ca), leaf(b, ca)
		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			n := 0
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- n
					return
				default:
				}
				l := l1
				if i%2 == 1 {
					l = l2
				}
				write(b, ca, dir, l, ca)
				if ok, _ := src.Reload(); ok {
					n++
				}
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := get(hello); err != nil {
				b.Fatal(err)
			}
		}
		close(stop)
		b.ReportMetric(float64(<-done), "reloads")
	})
}

// The client side lookup, used by every outgoing handshake.
func BenchmarkGetClientCertificate(b *testing.B) {
	_, _, paths := setup(b)
	src, err := certs.NewSource(certs.Config{Paths: paths, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := src.ClientConfig("localhost")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{}); err != nil {
			b.Fatal(err)
		}
	}
}
