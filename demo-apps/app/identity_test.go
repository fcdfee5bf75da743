package app

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

// A certificate from the trusted CA is accepted and the answer names the
// caller by its SPIFFE ID, with the serial it presented.
func TestBackendAcceptsClientFromCAAndNamesCaller(t *testing.T) {
	ca := newCA(t, "demo CA")
	dir := t.TempDir()
	publish(t, dir, issue(t, ca, "backend"), ca)
	opts := serverOpts(RoleBackend, dir)
	opts.AllowedClients = []string{spiffeID("frontend"), "legacy-client"}
	_, addr := start(t, opts)

	leaf := issue(t, ca, "frontend")
	resp, body, err := postJSON(tlsClient(ca, leaf), "https://"+addr+"/process", `{"request_id": "1"}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var ans BackendAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Caller != spiffeID("frontend") || ans.CallerSerial != certs.SerialHex(leaf.Cert) || ans.RequestID != "1" || !ans.MTLS {
		t.Fatalf("answer %+v: want caller %s serial %s request 1 over mTLS", ans, spiffeID("frontend"), certs.SerialHex(leaf.Cert))
	}

	// Without a URI SAN the common name is the identity.
	cnOnly := issue(t, ca, "legacy-client", func(s *pki.LeafSpec) { s.URIs = nil })
	resp, body, err = postJSON(tlsClient(ca, cnOnly), "https://"+addr+"/process", `{"request_id": 2}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"caller":"legacy-client"`) {
		t.Fatalf("CN-only client: status %d body %s", resp.StatusCode, body)
	}
}

// Untrusted callers never reach the handler; each refusal is counted with
// its reason, and a trusted but unlisted identity gets 403.
func TestBackendRefusesUntrustedClients(t *testing.T) {
	ca, other := newCA(t, "demo CA"), newCA(t, "other CA")
	dir := t.TempDir()
	publish(t, dir, issue(t, ca, "backend"), ca)
	opts := serverOpts(RoleBackend, dir)
	opts.AllowedClients = []string{spiffeID("frontend")}
	svc, addr := start(t, opts)
	url := "https://" + addr + "/process"

	handshakeRefusals := []struct {
		name   string
		leaf   *pki.Leaf
		reason string
	}{
		{"no client certificate", nil, "no_client_certificate"},
		{"certificate from another CA", issue(t, other, "frontend"), "unknown_authority"},
		{"expired certificate", issue(t, ca, "frontend", func(s *pki.LeafSpec) {
			s.NotBefore, s.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
		}), "expired"},
		{"server-only certificate", issue(t, ca, "frontend", func(s *pki.LeafSpec) {
			s.Usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}), "wrong_key_usage"},
	}
	for _, tc := range handshakeRefusals {
		t.Run(tc.name, func(t *testing.T) {
			before := metric(t, svc.Metrics(), "mtls_handshake_failures_total", map[string]string{"reason": tc.reason})
			resp, body, err := postJSON(tlsClient(ca, tc.leaf), url, `{"request_id": "1"}`)
			if err == nil {
				t.Fatalf("request succeeded with status %d body %s; want the handshake refused", resp.StatusCode, body)
			}
			after := metric(t, svc.Metrics(), "mtls_handshake_failures_total", map[string]string{"reason": tc.reason})
			if after != before+1 {
				t.Fatalf("mtls_handshake_failures_total{reason=%q} went %v -> %v, want +1 (error was %v)", tc.reason, before, after, err)
			}
		})
	}

	t.Run("identity not in ALLOWED_CLIENTS", func(t *testing.T) {
		resp, body, err := postJSON(tlsClient(ca, issue(t, ca, "intruder")), url, `{"request_id": "1"}`)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), spiffeID("intruder")) {
			t.Fatalf("status %d body %s: want 403 naming the caller", resp.StatusCode, body)
		}
		if got := metric(t, svc.Metrics(), "mtls_requests_total", map[string]string{"handler": "process", "outcome": "forbidden"}); got != 1 {
			t.Fatalf("forbidden requests counted %v, want 1", got)
		}
	})

	t.Run("plain HTTP to the TLS port", func(t *testing.T) {
		resp, _, err := postJSON(http.DefaultClient, "http://"+addr+"/process", `{"request_id": "1"}`)
		if err == nil && resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP request was served by an mTLS backend")
		}
	})
}

// USE_MTLS defaults to true: a pod without the certificate volume must not
// start, and the error must say which variable and file are missing.
func TestMissingCertificateFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"defaults, nothing mounted", map[string]string{},
			[]string{"MTLS_CERT_FILE=/var/run/mtls/tls.crt (default)", "USE_MTLS=true", "USE_MTLS=false"}},
		{"explicit path missing", map[string]string{"MTLS_CERT_FILE": dir + "/tls.crt", "MTLS_KEY_FILE": dir + "/tls.key", "MTLS_CA_FILE": dir + "/ca.crt"},
			[]string{"MTLS_CERT_FILE=" + dir + "/tls.crt (set)", "no such file"}},
		{"bad value", map[string]string{"PORT": "eighty", "USE_MTLS": "maybe"},
			[]string{`PORT="eighty"`, "1-65535", `USE_MTLS="maybe"`, "true or false"}},
		{"https backend in plain mode", map[string]string{"USE_MTLS": "false", "BACKEND_URL": "https://backend-svc:8080"},
			[]string{`BACKEND_URL="https://backend-svc:8080"`, "USE_MTLS=true"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var logs strings.Builder
			err := Main(ctx, RoleFrontend, "test", func(k string) string { return tc.env[k] }, &logs)
			if err == nil {
				t.Fatal("Main started without a usable configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	// Half an injection (files present but garbage) is refused as well.
	garbage := t.TempDir()
	publish(t, garbage, &pki.Leaf{CertPEM: []byte("not a cert"), KeyPEM: []byte("nope")}, newCA(t, "x"))
	_, err := New(serverOpts(RoleBackend, garbage), quietLogger())
	if err == nil || !strings.Contains(err.Error(), certs.ReasonCertParse) {
		t.Fatalf("garbage certificate: got %v, want %s", err, certs.ReasonCertParse)
	}
	var le *certs.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %v does not wrap a certs.LoadError", err)
	}
}
