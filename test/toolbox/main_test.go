package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

// An mTLS server like the demo backend: it demands a client certificate
// from its CA. fetch must tell a refused client (no certificate) from a
// trusted one, with curl's exit codes.
func TestFetchExitCodes(t *testing.T) {
	ca, err := pki.NewCA("toolbox test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvLeaf, err := ca.Issue(pki.LoopbackServer("server"))
	if err != nil {
		t.Fatal(err)
	}
	srvPair, err := srvLeaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"caller":%q}`, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvPair}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	cli, err := ca.Issue(pki.LeafSpec{CommonName: "client", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"tls.crt": cli.CertPEM, "tls.key": cli.KeyPEM, "ca.crt": ca.CertPEM}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withCert := []string{"--cacert", filepath.Join(dir, "ca.crt"), "--cert", filepath.Join(dir, "tls.crt"), "--key", filepath.Join(dir, "tls.key")}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "https://" + closed.Addr().String() + "/"
	_ = closed.Close()

	for _, tc := range []struct {
		name    string
		args    []string
		want    []int
		wantOut string
	}{
		{"a client without a certificate is refused", []string{"-k", srv.URL + "/"}, []int{exitHandshake, exitReceive}, ""},
		{"a client with a certificate from the CA gets the answer", append(withCert, srv.URL+"/"), []int{exitOK}, `"caller":"client"`},
		{"an HTTP error with --fail exits 22", append(withCert, "--fail", srv.URL+"/missing"), []int{exitHTTPError}, "HTTP 404"},
		{"a server certificate from an unknown CA fails the handshake", []string{srv.URL + "/"}, []int{exitHandshake}, ""},
		{"a closed port is refused", []string{"-k", closedURL}, []int{exitRefused}, ""},
		{"a port that stays closed is still refused after retrying", []string{"-k", "--retry-refused", "600ms", closedURL}, []int{exitRefused}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			got := fetch(tc.args, &out, &errOut)
			ok := false
			for _, w := range tc.want {
				ok = ok || got == w
			}
			if !ok {
				t.Fatalf("exit %d, want one of %v\nstdout: %s\nstderr: %s", got, tc.want, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q does not contain %q", out.String(), tc.wantOut)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00}
	appData := []byte{0x17, 0x03, 0x03, 0x00, 0x20, 0x01}
	json := []byte("POST /process HTTP/1.1\r\n\r\n{\"request_id\": \"1\"}")
	j, h := Summarize([][]byte{hello, appData, json, hello[:5]})
	if j != 1 || h != 1 {
		t.Fatalf("Summarize = %d JSON, %d ClientHello; want 1 and 1", j, h)
	}
}

// A refused connection is retried until the server appears, as a pod whose
// address a NetworkPolicy agent admits only after it started.
func TestFetchRetriesARefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "late but there")
	}))
	defer srv.Close()
	go func() {
		time.Sleep(500 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return // the test below then fails with the refused code
		}
		srv.Listener = l
		srv.Start()
	}()
	var out, errOut bytes.Buffer
	if code := fetch([]string{"--retry-refused", "5s", "--fail", "http://" + addr + "/"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "late but there") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the answer", code, out.String(), errOut.String())
	}
}

// --to takes addresses separated by commas; anything else is refused with
// the flag, the value and an example.
func TestParseAddrs(t *testing.T) {
	got, err := parseAddrs("198.18.0.10, 198.19.0.20,")
	if err != nil || len(got) != 2 || got[0].String() != "198.18.0.10" || got[1].String() != "198.19.0.20" {
		t.Errorf("parseAddrs(two addresses) = %v, %v", got, err)
	}
	if got, err := parseAddrs(""); err != nil || len(got) != 0 {
		t.Errorf(`parseAddrs("") = %v, %v; want no filter`, got, err)
	}
	_, err = parseAddrs("198.18.0.10,backend-svc")
	if err == nil || !strings.Contains(err.Error(), `--to=198.18.0.10,backend-svc: "backend-svc" is not an IP address`) {
		t.Errorf("parseAddrs(a name) error = %v", err)
	}
}
