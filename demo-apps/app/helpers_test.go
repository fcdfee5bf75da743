package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

func spiffeID(name string) string { return "spiffe://cluster.local/ns/demo/sa/" + name }

func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

func newCA(t testing.TB, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue signs a leaf for a workload the way the CSI driver would: SPIFFE URI
// SAN plus the loopback names the tests dial.
func issue(t testing.TB, ca *pki.CA, name string, mod ...func(*pki.LeafSpec)) *pki.Leaf {
	t.Helper()
	spec := pki.LeafSpec{
		CommonName: name,
		URIs:       []string{spiffeID(name)},
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	for _, m := range mod {
		m(&spec)
	}
	leaf, err := ca.Issue(spec)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func publish(t testing.TB, dir string, leaf *pki.Leaf, cas ...*pki.CA) {
	t.Helper()
	if err := pki.WriteAtomic(dir, pki.Files{Cert: leaf.CertPEM, Key: leaf.KeyPEM, CA: pki.Bundle(cas...)}); err != nil {
		t.Fatal(err)
	}
}

func pathsIn(dir string) certs.Paths {
	return certs.Paths{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt")}
}

// serverOpts returns options for a server reading certificates from dir.
func serverOpts(role Role, dir string) Options {
	o := Defaults(role)
	o.Port = 0
	o.Certs = pathsIn(dir)
	o.PollInterval = 100 * time.Millisecond
	return o
}

// start runs a service on a real loopback socket until the test ends.
func start(t testing.TB, opts Options) (*Service, string) {
	t.Helper()
	svc, err := New(opts, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped with error: %v", opts.Role, err)
		}
	})
	return svc, ln.Addr().String()
}

// tlsClient is a plain Go HTTPS client holding leaf (or no certificate at
// all when leaf is nil), trusting ca: the tests' stand-in for curl.
func tlsClient(ca *pki.CA, leaf *pki.Leaf) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if leaf != nil {
		pair, err := leaf.TLSCertificate()
		if err != nil {
			panic(err) // test helper input is generated above; cannot be malformed
		}
		// Present the certificate whatever CAs the server lists as
		// acceptable, as curl --cert does; Go's default selection would
		// silently send nothing for a foreign-CA certificate.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// metric returns the value of one sample from a registry, 0 if absent.
func metric(t testing.TB, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	sample:
		for _, s := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range s.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue sample
				}
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			}
		}
	}
	return 0
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func postJSON(c *http.Client, url, body string) (*reply, []byte, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &reply{StatusCode: resp.StatusCode, Status: resp.Status}, b, err
}

// reply is the part of a response the tests look at once the body is read
// and closed.
type reply struct {
	StatusCode int
	Status     string
}

// servedSerial opens a fresh TLS connection to addr (presenting leaf) and
// returns the serial of the certificate the server presented.
func servedSerial(t testing.TB, addr string, _ *pki.CA, leaf *pki.Leaf) string {
	t.Helper()
	pair, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // only the served serial is read here
		Certificates:       []tls.Certificate{pair},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return certs.SerialHex(conn.ConnectionState().PeerCertificates[0])
}
