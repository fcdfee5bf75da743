package app

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

// chainSetup is client -> frontend -> backend over mTLS, each with its own
// certificate directory, all reading certificates the way pods do.
type chainSetup struct {
	dirs     map[string]string
	frontend *Service
	backend  *Service
	feAddr   string
}

func startChain(t *testing.T, ca *pki.CA, frontendReload bool) *chainSetup {
	t.Helper()
	c := &chainSetup{dirs: map[string]string{}}
	for _, name := range []string{"backend", "frontend", "client"} {
		c.dirs[name] = t.TempDir()
		publish(t, c.dirs[name], issue(t, ca, name), ca)
	}
	be := serverOpts(RoleBackend, c.dirs["backend"])
	be.AllowedClients = []string{spiffeID("frontend")}
	var beAddr string
	c.backend, beAddr = start(t, be)
	fe := serverOpts(RoleFrontend, c.dirs["frontend"])
	fe.AllowedClients = []string{spiffeID("client")}
	fe.BackendURL = "https://localhost:" + portOf(beAddr)
	fe.CertReload = frontendReload
	c.frontend, c.feAddr = start(t, fe)
	return c
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		panic(err) // addresses come from net.Listen
	}
	return port
}

func (c *chainSetup) loadClient(t *testing.T, count, concurrency int, onResult func(Result)) *LoadClient {
	t.Helper()
	tlsOpts := Defaults(RoleClient)
	tlsOpts.Certs = pathsIn(c.dirs["client"])
	tlsOpts.PollInterval = 100 * time.Millisecond
	lc, err := NewLoadClient(ClientOptions{
		URL: "https://localhost:" + portOf(c.feAddr), Count: count, Concurrency: concurrency,
		Timeout: 10 * time.Second, Quiet: true, TLS: tlsOpts, OnResult: onResult,
	}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// backendSaw extracts the frontend serial the backend reported.
func backendSaw(r Result) string {
	if r.Answer == nil {
		return ""
	}
	var b BackendAnswer
	if json.Unmarshal(r.Answer.Backend, &b) != nil {
		return ""
	}
	return b.CallerSerial
}

// The headline property: under continuous load, five leaf rotations and a
// full CA rollover (bundle old+new, leaves from the new CA, old CA dropped)
// happen through symlink swaps without a single failed request, and the
// backend sees every new frontend certificate without a restart.
func TestRotationUnderLoadFailsNothing(t *testing.T) {
	const total, steps = 2000, 8
	ca1 := newCA(t, "CA 1")
	c := startChain(t, ca1, true)

	var mu sync.Mutex
	seen := map[string]int{} // frontend serial as reported by the backend
	lc := c.loadClient(t, 0, 8, func(r Result) {
		mu.Lock()
		seen[backendSaw(r)]++
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sum Summary
	done := make(chan struct{})
	go func() { sum = lc.Run(ctx, os.Stderr); close(done) }()

	sources := map[string]*certs.Source{"backend": c.backend.Source(), "frontend": c.frontend.Source(), "client": lc.Source()}
	var frontendSerials []string
	// rotate publishes new content everywhere and waits until all three
	// processes report it in service.
	rotate := func(step int, issuer *pki.CA, bundle []*pki.CA, wantCAs int) {
		eventually(t, 20*time.Second, "load progress", func() bool { return lc.Sent() >= step*total/(steps+1) })
		want := map[string]string{}
		for name, dir := range c.dirs {
			leaf := issue(t, issuer, name)
			publish(t, dir, leaf, bundle...)
			want[name] = certs.SerialHex(leaf.Cert)
		}
		frontendSerials = append(frontendSerials, want["frontend"])
		for name, src := range sources {
			eventually(t, 5*time.Second, name+" reload at step", func() bool {
				b := src.Current()
				return b.Serial == want[name] && len(b.CAs) == wantCAs
			})
		}
	}
	for step := 1; step <= 5; step++ {
		rotate(step, ca1, []*pki.CA{ca1}, 1)
	}
	ca2 := newCA(t, "CA 2")
	rotate(6, ca1, []*pki.CA{ca1, ca2}, 2) // trust both
	rotate(7, ca2, []*pki.CA{ca1, ca2}, 2) // leaves from the new CA
	rotate(8, ca2, []*pki.CA{ca2}, 1)      // old CA gone
	eventually(t, 30*time.Second, "total requests", func() bool { return lc.Sent() >= total+total/(steps+1) })
	cancel()
	<-done

	if sum.Failed != 0 || sum.Sent < total {
		t.Fatalf("%s\nwant >= %d requests and 0 failures", sum, total)
	}
	for i, s := range frontendSerials {
		if seen[s] == 0 {
			t.Errorf("backend never saw frontend certificate of step %d (serial %s); saw %v", i+1, s, seen)
		}
	}
	for name, m := range map[string]*Metrics{"backend": c.backend.Metrics(), "frontend": c.frontend.Metrics(), "client": lc.Metrics()} {
		if got := metric(t, m, "mtls_cert_reloads_total", nil); got < steps {
			t.Errorf("%s counted %v reloads, want >= %d", name, got, steps)
		}
	}
	if got := metric(t, c.backend.Metrics(), "mtls_handshake_failures_total", nil); got != 0 {
		t.Errorf("backend refused %v handshakes during rotation, want 0", got)
	}
	t.Logf("%s; backend saw %d distinct frontend serials", sum, len(seen))
}

// CERT_RELOAD=false is the seed's behaviour: the rotated files are ignored
// until a restart. The same rotation with reload on changes both the served
// certificate and the one presented to the backend.
func TestCertReloadDisabledKeepsOldCertificate(t *testing.T) {
	ca := newCA(t, "demo CA")
	static := startChain(t, ca, false)
	live := startChain(t, ca, true)

	ask := func(c *chainSetup) Result {
		var res Result
		lc := c.loadClient(t, 1, 1, func(r Result) { res = r })
		if sum := lc.Run(context.Background(), os.Stderr); sum.Failed != 0 {
			t.Fatalf("request failed: %s", sum)
		}
		return res
	}
	oldStatic := static.frontend.Source().Current().Serial
	if got := backendSaw(ask(static)); got != oldStatic {
		t.Fatalf("backend saw %q, want the frontend serial %s", got, oldStatic)
	}
	clientLeaf := issue(t, ca, "client")
	newSerials := map[*chainSetup]string{}
	for _, c := range []*chainSetup{static, live} {
		leaf := issue(t, ca, "frontend")
		publish(t, c.dirs["frontend"], leaf, ca)
		newSerials[c] = certs.SerialHex(leaf.Cert)
	}
	eventually(t, 5*time.Second, "live frontend reload", func() bool {
		return live.frontend.Source().Current().Serial == newSerials[live]
	})
	time.Sleep(300 * time.Millisecond) // three poll intervals for the static one

	if got := backendSaw(ask(live)); got != newSerials[live] {
		t.Errorf("reload on: backend saw %s, want the new serial %s", got, newSerials[live])
	}
	if got := servedSerial(t, live.feAddr, ca, clientLeaf); got != newSerials[live] {
		t.Errorf("reload on: frontend serves %s, want %s", got, newSerials[live])
	}
	if got := backendSaw(ask(static)); got != oldStatic {
		t.Errorf("reload off: backend saw %s, want the old serial %s", got, oldStatic)
	}
	if got := servedSerial(t, static.feAddr, ca, clientLeaf); got != oldStatic {
		t.Errorf("reload off: frontend serves %s, want the old serial %s", got, oldStatic)
	}
	if got := metric(t, static.frontend.Metrics(), "mtls_cert_reloads_total", nil); got != 0 {
		t.Errorf("reload off: %v reloads counted", got)
	}
}

// A set caught half-written, or a new certificate next to the old key, is
// refused: the previous certificate keeps serving, the reason is counted,
// and a later valid set is picked up.
func TestBrokenCertificateKeepsOldOne(t *testing.T) {
	ca := newCA(t, "demo CA")
	dir := t.TempDir()
	first := issue(t, ca, "backend")
	publish(t, dir, first, ca)
	svc, addr := start(t, serverOpts(RoleBackend, dir))
	client := tlsClient(ca, issue(t, ca, "frontend"))
	clientLeaf := issue(t, ca, "frontend")
	oldSerial := certs.SerialHex(first.Cert)
	errorsFor := func(reason string) float64 {
		return metric(t, svc.Metrics(), "mtls_cert_reload_errors_total", map[string]string{"reason": reason})
	}
	stillServing := func(stage string) {
		t.Helper()
		if got := svc.Source().Current().Serial; got != oldSerial {
			t.Fatalf("%s: serial in service %s, want the old %s", stage, got, oldSerial)
		}
		if got := servedSerial(t, addr, ca, clientLeaf); got != oldSerial {
			t.Fatalf("%s: served %s, want the old %s", stage, got, oldSerial)
		}
		resp, body, err := postJSON(client, "https://"+addr+"/process", `{"request_id": "7"}`)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: request failed: %v %s", stage, err, body)
		}
	}

	next := issue(t, ca, "backend")
	// A writer that is not atomic, caught halfway through tls.crt.
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), next.CertPEM[:len(next.CertPEM)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "cert_parse_error counted", func() bool { return errorsFor(certs.ReasonCertParse) == 1 })
	stillServing("half-written tls.crt")

	// The complete new certificate, but the key is still the old one.
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), next.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "key_mismatch counted", func() bool { return errorsFor(certs.ReasonKeyMismatch) == 1 })
	stillServing("mismatched pair")
	time.Sleep(300 * time.Millisecond)
	if got := errorsFor(certs.ReasonKeyMismatch); got != 1 {
		t.Fatalf("the same broken set was counted %v times, want once", got)
	}

	if err := os.WriteFile(filepath.Join(dir, "tls.key"), next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "recovery", func() bool { return svc.Source().Current().Serial == certs.SerialHex(next.Cert) })
	if got := servedSerial(t, addr, ca, clientLeaf); got != certs.SerialHex(next.Cert) {
		t.Fatalf("after recovery served %s, want %s", got, certs.SerialHex(next.Cert))
	}
}
