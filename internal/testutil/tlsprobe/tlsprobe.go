// Package tlsprobe checks a server's TLS configuration against the
// intermediate profile with real handshakes, the way a security scanner
// would: it serves the configuration on a loopback port and connects with
// one client per cipher suite and protocol version, first Go's crypto/tls,
// then the openssl command-line client.
//
// Every refusal is cross-checked against a reference server that serves the
// same certificate with everything Go can speak (TLS 1.0 to 1.3, every
// suite, the insecure ones included): a suite the reference accepts and the
// server under test refuses is refused by the configuration, not by a
// client that could not offer it.
//
// The expected suites are written out below by name, independently of
// package tlsprofile, so that a wrong list there fails here.
package tlsprobe

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// OpenSSLEnv names the environment variable that points at the openssl
// binary; without it, openssl is looked up on PATH.
const OpenSSLEnv = "OPENSSL"

// KeyKind is the kind of key a server certificate holds. A TLS 1.2 suite
// names the signature algorithm of the server's key (ECDHE_ECDSA or
// ECDHE_RSA), so a server can only agree to the suites of its key's kind.
type KeyKind string

// Key kinds of the certificates the CSI driver issues.
const (
	ECDSA KeyKind = "ECDSA"
	RSA   KeyKind = "RSA"
)

// Accepted are the TLS 1.2 suites of Mozilla's intermediate profile that Go
// implements, by the key kind of the server's certificate.
var Accepted = map[KeyKind][]uint16{
	ECDSA: {
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	},
	RSA: {
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	},
}

// opensslSuite is one TLS 1.2 suite by its OpenSSL name, and whether the
// profile accepts it.
type opensslSuite struct {
	name   string
	accept bool
}

// opensslSuites are the suites offered with openssl s_client, by key kind:
// the intermediate ones, and the ones a review flags (CBC with SHA-1 or
// SHA-256 MACs, static RSA key exchange). 3DES is left to the Go scan:
// OpenSSL 3 builds commonly leave it out altogether.
var opensslSuites = map[KeyKind][]opensslSuite{
	ECDSA: {
		{"ECDHE-ECDSA-AES128-GCM-SHA256", true},
		{"ECDHE-ECDSA-AES256-GCM-SHA384", true},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", true},
		{"ECDHE-ECDSA-AES128-SHA", false},
		{"ECDHE-ECDSA-AES256-SHA", false},
		{"ECDHE-ECDSA-AES128-SHA256", false},
	},
	RSA: {
		{"ECDHE-RSA-AES128-GCM-SHA256", true},
		{"ECDHE-RSA-AES256-GCM-SHA384", true},
		{"ECDHE-RSA-CHACHA20-POLY1305", true},
		{"ECDHE-RSA-AES128-SHA", false},
		{"ECDHE-RSA-AES256-SHA", false},
		{"AES128-GCM-SHA256", false},
		{"AES128-SHA", false},
	},
}

// tls13Suites are the three TLS 1.3 suites, all AEAD.
var tls13Suites = []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256}

// Server is a TLS server configuration to check.
type Server struct {
	// Config is the configuration under test, exactly as the server uses it.
	Config *tls.Config
	// Cert is the certificate Config serves; the reference server serves it
	// too, and its key decides which suites can be agreed.
	Cert tls.Certificate
	// Client is presented by every probe, for servers that require a client
	// certificate; nil presents none.
	Client *tls.Certificate
}

// greeting is what the probe server writes once a handshake succeeded. A
// client reads it to know that the server accepted the handshake too: in
// TLS 1.3 the client finishes first, before the server has checked its
// certificate.
const greeting = "tlsprobe: handshake accepted\n"

// Check runs every probe against s and reports each difference from the
// profile as a test error.
func Check(t *testing.T, s Server) {
	t.Helper()
	kind, err := keyKind(s.Cert)
	if err != nil {
		t.Fatal(err)
	}
	server := serve(t, s.Config)
	reference := serve(t, referenceConfig(s.Cert))

	t.Run("go-tls12-suites", func(t *testing.T) { checkTLS12Suites(t, s, kind, server, reference) })
	t.Run("go-versions", func(t *testing.T) { checkVersions(t, s, server, reference) })
	t.Run("openssl", func(t *testing.T) { checkOpenSSL(t, s, kind, server, reference) })
}

// referenceConfig accepts everything crypto/tls implements.
func referenceConfig(cert tls.Certificate) *tls.Config {
	var all []uint16
	for _, cs := range slices.Concat(tls.CipherSuites(), tls.InsecureCipherSuites()) {
		all = append(all, cs.ID)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS10,
		CipherSuites: all,
		ClientAuth:   tls.RequestClientCert,
	}
}

func checkTLS12Suites(t *testing.T, s Server, kind KeyKind, server, reference string) {
	var accepted []uint16
	for _, cs := range slices.Concat(tls.CipherSuites(), tls.InsecureCipherSuites()) {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue // the TLS 1.3 suites; see checkVersions
		}
		cfg := clientConfig(s)
		cfg.MaxVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{cs.ID}
		state, err := probe(server, cfg)
		if err == nil {
			accepted = append(accepted, cs.ID)
			if state.CipherSuite != cs.ID || state.Version != tls.VersionTLS12 {
				t.Errorf("%s: offered alone with TLS 1.2, but %s %s was agreed", cs.Name,
					tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
			}
			continue
		}
		// The refusal must come from the configuration: the reference
		// server, with the same certificate, agrees to every suite of the
		// certificate's kind.
		if suiteKind(cs.Name) == kind {
			if _, refErr := probe(reference, cfg); refErr != nil {
				t.Errorf("%s: the reference server refused it too (%v): the probe cannot tell", cs.Name, refErr)
			}
		}
	}
	want := Accepted[kind]
	if !sameSet(accepted, want) {
		t.Errorf("TLS 1.2 suites accepted with a %s certificate:\n  got  %s\n  want %s", kind, names(accepted), names(want))
	}
}

func checkVersions(t *testing.T, s Server, server, reference string) {
	cfg := clientConfig(s)
	cfg.MinVersion = tls.VersionTLS13 // Go lets no client pick a TLS 1.3 suite; openssl tries each
	state, err := probe(server, cfg)
	switch {
	case err != nil:
		t.Errorf("TLS 1.3: refused: %v", err)
	case state.Version != tls.VersionTLS13 || !slices.Contains(tls13Suites, state.CipherSuite):
		t.Errorf("TLS 1.3 client: agreed to %s %s", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
	}

	// A client with Go's defaults gets the hybrid post-quantum key
	// exchange: the profile must not have taken it away.
	state, err = probe(server, clientConfig(s))
	switch {
	case err != nil:
		t.Errorf("default client: refused: %v", err)
	case state.CurveID != tls.X25519MLKEM768:
		t.Errorf("default client: key exchange %v, want %v (Go's default, post-quantum hybrid)", state.CurveID, tls.X25519MLKEM768)
	}

	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		cfg := clientConfig(s)
		cfg.MinVersion, cfg.MaxVersion = v, v
		cfg.CipherSuites = referenceConfig(s.Cert).CipherSuites
		if _, err := probe(reference, cfg); err != nil {
			t.Errorf("%s: the reference server refused it too (%v): the probe cannot tell", tls.VersionName(v), err)
		}
		if state, err := probe(server, cfg); err == nil {
			t.Errorf("%s: accepted (%s), want refused", tls.VersionName(v), tls.CipherSuiteName(state.CipherSuite))
		}
	}
}

// clientConfig is the base of every Go probe. It does not verify the
// server: the suites are under test here, not the chain.
func clientConfig(s Server) *tls.Config {
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"} //nolint:gosec // probes test suites, not chains
	if s.Client != nil {
		cfg.Certificates = []tls.Certificate{*s.Client}
	}
	return cfg
}

// probe connects with cfg and reads the server's greeting.
func probe(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, fmt.Errorf("dialer returned %T", conn)
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		return tc.ConnectionState(), err
	}
	if string(got) != greeting {
		return tc.ConnectionState(), fmt.Errorf("server said %q after the handshake, want the greeting", got)
	}
	return tc.ConnectionState(), nil
}

// serve accepts TLS connections with cfg on a loopback port until the test
// ends: each handshake that succeeds gets the greeting, then the connection
// is closed.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				conn := tls.Server(raw, cfg)
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				if conn.Handshake() == nil {
					_, _ = io.WriteString(conn, greeting)
				}
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func checkOpenSSL(t *testing.T, s Server, kind KeyKind, server, reference string) {
	bin := os.Getenv(OpenSSLEnv)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("openssl"); err != nil {
			t.Fatalf("openssl is not on PATH and %s is not set: the check needs an independent TLS client (%v)", OpenSSLEnv, err)
		}
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	var args []string
	if s.Client != nil {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
		if err := writePair(*s.Client, certFile, keyFile); err != nil {
			t.Fatal(err)
		}
		args = []string{"-cert", certFile, "-key", keyFile}
	}
	run := func(addr string, extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// -ign_eof: wait for the server to close, so the greeting arrives;
		// an empty stdin would otherwise end the session at once.
		cmd := exec.CommandContext(ctx, bin, slices.Concat([]string{"s_client", "-connect", addr, "-servername", "localhost", "-brief", "-ign_eof"}, args, extra)...)
		cmd.Stdin = bytes.NewReader(nil)
		out, err := cmd.CombinedOutput()
		if err == nil && !strings.Contains(string(out), strings.TrimSpace(greeting)) {
			err = errors.New("no greeting from the server")
		}
		return string(out), err
	}

	for _, suite := range opensslSuites[kind] {
		// SECLEVEL=0 lets openssl offer the legacy suites it would hold
		// back by default; the server has to refuse them itself.
		extra := []string{"-tls1_2", "-cipher", suite.name + ":@SECLEVEL=0"}
		out, err := run(server, extra...)
		switch {
		case suite.accept && err != nil:
			t.Errorf("openssl %s: refused, want accepted: %v\n%s", suite.name, err, out)
		case suite.accept && !strings.Contains(out, "Ciphersuite: "+suite.name):
			t.Errorf("openssl %s: connected without agreeing to it:\n%s", suite.name, out)
		case !suite.accept && err == nil:
			t.Errorf("openssl %s: accepted, want refused:\n%s", suite.name, out)
		case !suite.accept:
			if out, err := run(reference, extra...); err != nil {
				t.Errorf("openssl %s: the reference server refused it too (%v): the probe cannot tell\n%s", suite.name, err, out)
			}
		}
	}

	for _, name := range []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
		out, err := run(server, "-tls1_3", "-ciphersuites", name)
		if err != nil || !strings.Contains(out, "Ciphersuite: "+name) {
			t.Errorf("openssl TLS 1.3 %s: want accepted (%v):\n%s", name, err, out)
		}
	}

	for _, flag := range []string{"-tls1", "-tls1_1"} {
		extra := []string{flag, "-cipher", "DEFAULT:@SECLEVEL=0"}
		if out, err := run(reference, extra...); err != nil {
			t.Errorf("openssl %s: the reference server refused it too (%v): the probe cannot tell\n%s", flag, err, out)
		}
		if out, err := run(server, extra...); err == nil {
			t.Errorf("openssl %s: accepted, want refused:\n%s", flag, out)
		}
	}
}

// writePair writes cert's chain and key as PEM files for openssl.
func writePair(cert tls.Certificate, certFile, keyFile string) error {
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
}

func keyKind(cert tls.Certificate) (KeyKind, error) {
	if len(cert.Certificate) == 0 {
		return "", errors.New("tlsprobe: the server certificate is empty")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("tlsprobe: server certificate: %w", err)
	}
	switch leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return ECDSA, nil
	case *rsa.PublicKey:
		return RSA, nil
	}
	return "", fmt.Errorf("tlsprobe: server key %T: want ECDSA or RSA", leaf.PublicKey)
}

// suiteKind is the certificate kind a TLS 1.2 suite needs: ECDSA for the
// ECDHE_ECDSA suites, RSA for the others (ECDHE_RSA and static RSA).
func suiteKind(name string) KeyKind {
	if strings.Contains(name, "_ECDSA_") {
		return ECDSA
	}
	return RSA
}

func sameSet(a, b []uint16) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func names(ids []uint16) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tls.CipherSuiteName(id)
	}
	return strings.Join(out, ", ")
}
