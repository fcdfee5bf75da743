package app

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

// BenchmarkKeepAliveMTLSvsPlain measures requests/s through client ->
// frontend -> backend with keep-alive connections, plain and mTLS, in
// alternating batches of the same run so background load hits both alike.
// The mtls/plain metric is the ratio asked for (target >= 0.8).
func BenchmarkKeepAliveMTLSvsPlain(b *testing.B) {
	const batch, workers = 50, 4
	ca := newCA(b, "bench CA")
	dirs := map[string]string{}
	for _, n := range []string{"backend", "frontend"} {
		dirs[n] = b.TempDir()
		publish(b, dirs[n], issue(b, ca, n), ca)
	}
	type chain struct {
		url    string
		client *http.Client
	}
	build := func(mtls bool) chain {
		be, fe := Defaults(RoleBackend), Defaults(RoleFrontend)
		be.Port, fe.Port = 0, 0
		be.UseMTLS, fe.UseMTLS = mtls, mtls
		be.Certs, fe.Certs = pathsIn(dirs["backend"]), pathsIn(dirs["frontend"])
		scheme, client := "http", &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		if mtls {
			scheme = "https"
			client = tlsClient(ca, issue(b, ca, "client"))
			client.Transport.(*http.Transport).DisableKeepAlives = false
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = workers
		}
		_, beAddr := start(b, be)
		fe.BackendURL = scheme + "://localhost:" + portOf(beAddr)
		_, feAddr := start(b, fe)
		return chain{url: scheme + "://localhost:" + portOf(feAddr) + "/submit", client: client}
	}
	plain, mtls := build(false), build(true)
	run := func(c chain) time.Duration {
		start := time.Now()
		errc := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := range batch / workers {
					resp, _, err := postJSON(c.client, c.url, `{"request_id": "`+strconv.Itoa(w*batch+i)+`"}`)
					if err == nil && resp.StatusCode != 200 {
						err = &net.AddrError{Err: "status " + resp.Status}
					}
					if err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
		}
		for range workers {
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	run(plain) // warm both pools
	run(mtls)
	var tPlain, tMTLS time.Duration
	n := 0
	for b.Loop() {
		tPlain += run(plain)
		tMTLS += run(mtls)
		n += batch
	}
	plainRate, mtlsRate := float64(n)/tPlain.Seconds(), float64(n)/tMTLS.Seconds()
	b.ReportMetric(plainRate, "plain-req/s")
	b.ReportMetric(mtlsRate, "mtls-req/s")
	b.ReportMetric(mtlsRate/plainRate, "mtls/plain")
}

// BenchmarkHandshake measures complete mTLS handshakes (no resumption) per
// second against the demo's own server configuration, for the key types a
// CSI driver may issue.
func BenchmarkHandshake(b *testing.B) {
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.RSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			ca := newCA(b, "bench CA")
			withKey := func(s *pki.LeafSpec) { s.KeyType = kt }
			srvDir, cliDir := b.TempDir(), b.TempDir()
			publish(b, srvDir, issue(b, ca, "backend", withKey), ca)
			publish(b, cliDir, issue(b, ca, "frontend", withKey), ca)
			srv, err := certs.NewSource(certs.Config{Paths: pathsIn(srvDir), Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			cli, err := certs.NewSource(certs.Config{Paths: pathsIn(cliDir), Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			clientCfg, err := cli.ClientConfig("localhost")
			if err != nil {
				b.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.ServerConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						_ = c.(*tls.Conn).Handshake()
						c.Close()
					}()
				}
			}()
			start := time.Now()
			for b.Loop() {
				c, err := tls.Dial("tcp", ln.Addr().String(), clientCfg)
				if err != nil {
					b.Fatal(err)
				}
				// A one-byte read waits for the server's verdict on our
				// certificate (TLS 1.3 sends it after the client finishes).
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err != nil && !isEOF(err) {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		})
	}
}

func isEOF(err error) bool { return err != nil && strings.Contains(err.Error(), "EOF") }
