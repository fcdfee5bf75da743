package certs_test

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
	"github.com/mtls-demo/mtls-webhook/internal/testutil/tlsprobe"
)

// The demo apps' server configuration, as ServerConfig hands it to the
// listener, offers exactly the intermediate profile to real clients, with
// ECDSA and RSA certificates (mtls.demo/key-algorithm allows both).
func TestServerConfigOffersTheIntermediateProfile(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			ca, err := pki.NewCA("test CA", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			issue := func(spec pki.LeafSpec) *pki.Leaf {
				spec.KeyType = kt
				l, err := ca.Issue(spec)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			srv := issue(pki.LeafSpec{CommonName: "backend", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
			dir := t.TempDir()
			write(t, ca, dir, srv, ca)
			src, err := certs.NewSource(certs.Config{Logger: quiet(), Paths: certs.Paths{
				Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt")}})
			if err != nil {
				t.Fatal(err)
			}
			serverCert, err := srv.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			cl := issue(pki.LeafSpec{CommonName: "frontend"})
			clientCert, err := cl.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			tlsprobe.Check(t, tlsprobe.Server{Config: src.ServerConfig(), Cert: serverCert, Client: &clientCert})
		})
	}
}

// The client side offers the profile too: a server that accepts only a
// CBC suite gets no handshake from the demo's client configuration, and
// one that speaks the profile does.
func TestClientConfigOffersTheIntermediateProfile(t *testing.T) {
	ca, _, paths := setup(t)
	src, err := certs.NewSource(certs.Config{Logger: quiet(), Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(pki.LoopbackServer("backend"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := srv.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		suite  uint16
		accept bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
	} {
		name := tls.CipherSuiteName(tc.suite)
		server := &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tc.suite}, ClientAuth: tls.RequestClientCert}
		client, err := src.ClientConfig("localhost")
		if err != nil {
			t.Fatal(err)
		}
		err = handshake(t, server, client)
		if got := err == nil; got != tc.accept {
			t.Errorf("%s: client handshake error %v, want accepted=%t", name, err, tc.accept)
		}
	}
}

// handshake runs one handshake between server and client over a pipe and
// returns the client's error, else the server's.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() { done <- tls.Server(b, server).Handshake(); b.Close() }()
	err := tls.Client(a, client).Handshake()
	if serverErr := <-done; err == nil {
		err = serverErr
	}
	return err
}
