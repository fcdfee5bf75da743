package demoe2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mtls-demo/mtls-webhook/demo-apps/app"
	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
	"github.com/mtls-demo/mtls-webhook/pkg/demo"
)

func pod(t *testing.T, r *demo.Release, role string) (p struct {
	Name, IP string
	Cert     *x509.Certificate
}) {
	t.Helper()
	info, ok := r.Pod(role)
	if !ok || !info.Ready {
		t.Fatalf("no ready %s pod in %s", role, r.Namespace())
	}
	c, err := demo.MountedCert(info)
	if err != nil {
		t.Fatal(err)
	}
	p.Name, p.IP, p.Cert = info.Name, info.IP, c
	return p
}

// The certificates in both apps' volumes were issued by cert-manager's CA
// controller from the chart's demo CA, through CertificateRequests the real
// driver created, with the identities the webhook asked for.
func TestCertificatesFromTheCAReachBothApps(t *testing.T) {
	setup(t)
	for _, role := range []string{"frontend", "backend"} {
		p := pod(t, mtlsRel, role)
		if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: mtlsRel.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s certificate does not chain to the demo CA as a client certificate: %v", role, err)
		}
		if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: mtlsRel.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s certificate is not a server certificate from the demo CA: %v", role, err)
		}
		want := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", nsMTLS, role)
		if len(p.Cert.URIs) != 1 || p.Cert.URIs[0].String() != want {
			t.Errorf("%s URI SANs = %v, want [%s]", role, p.Cert.URIs, want)
		}
		if life := p.Cert.NotAfter.Sub(p.Cert.NotBefore); life > 3*time.Minute {
			t.Errorf("%s certificate lives %s, want the 2m from mtls.demo/duration", role, life)
		}
		// The app serves exactly the mounted certificate (or a newer one).
		m, err := demo.Scrape(context.Background(), p.IP, 8081)
		if err != nil {
			t.Fatal(err)
		}
		if m.Serial == "" || m.Identity != want {
			t.Errorf("%s serves serial %q identity %q, want a serial and %s", role, m.Serial, m.Identity, want)
		}
	}
	be := pod(t, mtlsRel, "backend")
	if !slices.Contains(be.Cert.DNSNames, "backend-svc") {
		t.Errorf("backend DNS names %v lack backend-svc (derived from the Service by the webhook)", be.Cert.DNSNames)
	}
	var crs unstructured.UnstructuredList
	crs.SetAPIVersion("cert-manager.io/v1")
	crs.SetKind("CertificateRequestList")
	if err := env.Client.List(context.Background(), &crs); err != nil {
		t.Fatal(err)
	}
	signed := 0
	for _, cr := range crs.Items {
		if cr.GetNamespace() != nsMTLS {
			continue
		}
		issuer, _, _ := unstructured.NestedString(cr.Object, "spec", "issuerRef", "name")
		conds, _, _ := unstructured.NestedSlice(cr.Object, "status", "conditions")
		approved, ready := false, false
		for _, c := range conds {
			m := c.(map[string]any)
			approved = approved || (m["type"] == "Approved" && m["status"] == "True")
			ready = ready || (m["type"] == "Ready" && m["status"] == "True")
		}
		if issuer == "demo-ca" && approved && ready {
			signed++
		}
	}
	if signed < 3 { // frontend, backend, client (plus the CA's own request from the ClusterIssuer)
		t.Errorf("%d approved and signed CertificateRequests for demo-ca in %s, want at least 3", signed, nsMTLS)
	}
}

// A request through frontend-svc reaches the backend through backend-svc,
// both hops mutually authenticated with the pods' SPIFFE identities.
func TestFrontendToBackendOverMTLSThroughServiceNames(t *testing.T) {
	setup(t)
	client, _ := mtlsRel.Pod("client")
	cfg, err := mtlsRel.PodTLS(client)
	if err != nil {
		t.Fatal(err)
	}
	status, body, err := mtlsRel.Post(context.Background(), "frontend-svc", 8080, "/submit", `{"request_id": "e2e-1"}`, cfg)
	if err != nil || status != 200 {
		t.Fatalf("POST /submit: status %d err %v body %s", status, err, body)
	}
	var fa app.FrontendAnswer
	if err := json.Unmarshal(body, &fa); err != nil {
		t.Fatal(err)
	}
	var ba app.BackendAnswer
	if err := json.Unmarshal(fa.Backend, &ba); err != nil {
		t.Fatalf("backend answer %s: %v", fa.Backend, err)
	}
	if !fa.MTLS || fa.Caller != "spiffe://cluster.local/ns/"+nsMTLS+"/sa/client" {
		t.Errorf("frontend saw mtls=%v caller %q, want mTLS from the client's SPIFFE ID", fa.MTLS, fa.Caller)
	}
	if !ba.MTLS || ba.Caller != mtlsRel.FrontendID() || ba.RequestID != "e2e-1" {
		t.Errorf("backend saw mtls=%v caller %q request %q, want mTLS from %s", ba.MTLS, ba.Caller, ba.RequestID, mtlsRel.FrontendID())
	}
}

// Under continuous traffic from the load client (20 req/s), both apps go
// through at least three renewals by the real driver and hot-reload each
// new certificate, and not one request fails.
func TestThreeRenewalsUnderLoadWithoutFailures(t *testing.T) {
	setup(t)
	ctx := context.Background()
	seen := map[string][]string{}
	deadline := time.Now().Add(150 * time.Second)
	var last demo.Metrics
	for time.Now().Before(deadline) {
		done := true
		for _, role := range []string{"frontend", "backend"} {
			p, ok := mtlsRel.Pod(role)
			if !ok {
				t.Fatalf("%s pod gone", role)
			}
			m, err := demo.Scrape(ctx, p.IP, 8081)
			if err != nil {
				t.Fatalf("%s metrics: %v", role, err)
			}
			if s := seen[role]; m.Serial != "" && (len(s) == 0 || s[len(s)-1] != m.Serial) {
				seen[role] = append(s, m.Serial)
			}
			done = done && len(seen[role]) >= 4 // the first serial + 3 renewals
		}
		c, _ := mtlsRel.Pod("client")
		m, err := demo.Scrape(ctx, c.IP, 9090)
		if err != nil {
			t.Fatalf("client metrics: %v", err)
		}
		last = m
		if f := m.Requests["http_error"] + m.Requests["transport_error"]; f > 0 {
			t.Fatalf("%v request(s) failed during rotation (ok=%v); serials so far %v", f, m.Requests["ok"], seen)
		}
		if done {
			break
		}
		time.Sleep(time.Second)
	}
	for _, role := range []string{"frontend", "backend"} {
		if n := len(seen[role]) - 1; n < 3 {
			t.Errorf("%s: %d renewal(s) observed in service (serials %v), want at least 3", role, n, seen[role])
		}
	}
	if last.Requests["ok"] < 100 {
		t.Errorf("only %v successful requests during the renewals", last.Requests["ok"])
	}
	t.Logf("serials: %v; client ok=%v failed=0", seen, last.Requests["ok"])
}

// With useMTLS=false the JSON crosses the wire to the backend in plain
// text; with mTLS the same request shows only TLS records.
func TestPlainHTTPPutsJSONOnTheWireAndMTLSDoesNot(t *testing.T) {
	setup(t)
	ctx := context.Background()
	tap := env.Agent.TapService(nsPlain, "backend-svc")
	status, body, err := plainRel.Post(ctx, "frontend-svc", 8080, "/submit", `{"request_id": "wire-plain"}`, nil)
	if err != nil || status != 200 {
		t.Fatalf("plain POST /submit: status %d err %v body %s", status, err, body)
	}
	if !anyContains(tap.Conns(), `"request_id":"wire-plain"`) && !anyContains(tap.Conns(), `"request_id": "wire-plain"`) {
		t.Errorf("plain mode: the request JSON was not readable on the wire to backend-svc; recorded %q", tap.Conns())
	}

	tap = env.Agent.TapService(nsMTLS, "backend-svc")
	c, _ := mtlsRel.Pod("client")
	cfg, err := mtlsRel.PodTLS(c)
	if err != nil {
		t.Fatal(err)
	}
	// The frontend keeps its connection to the backend alive: wait until a
	// fresh one shows up in the capture (it renews every ~20 s and then
	// reconnects), while sending marked requests.
	carriesData := func(b []byte) bool { return len(b) > 0 }
	deadline := time.Now().Add(45 * time.Second)
	for !slices.ContainsFunc(tap.Conns(), carriesData) && time.Now().Before(deadline) {
		status, body, err = mtlsRel.Post(ctx, "frontend-svc", 8080, "/submit", `{"request_id": "wire-mtls"}`, cfg)
		if err != nil || status != 200 {
			t.Fatalf("mTLS POST /submit: status %d err %v body %s", status, err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	conns := tap.Conns()
	if !slices.ContainsFunc(conns, carriesData) {
		t.Fatal("mTLS mode: no connection to backend-svc carried data within 45s")
	}
	for _, b := range conns {
		if strings.Contains(string(b), "request_id") {
			t.Errorf("mTLS mode: readable JSON on the wire: %q", b)
		}
		if len(b) > 0 && b[0] != 0x16 {
			t.Errorf("mTLS mode: connection starts with %#x, want a TLS handshake record (0x16)", b[0])
		}
	}
}

func anyContains(conns [][]byte, s string) bool {
	for _, c := range conns {
		if strings.Contains(string(c), s) {
			return true
		}
	}
	return false
}

// The seed's rogue pod: the backend refuses a client without a
// certificate and one with another CA's certificate (even for the
// frontend's own SPIFFE ID), while the real frontend certificate passes
// and a valid certificate of another identity gets 403.
func TestRogueClientsAreRefused(t *testing.T) {
	setup(t)
	ctx := context.Background()
	for _, r := range mtlsRel.RogueChecks(ctx) {
		if !r.Refused {
			t.Errorf("rogue client (%s) was accepted: %s", r.Name, r.Detail)
		}
	}
	fe, _ := mtlsRel.Pod("frontend")
	cfg, err := mtlsRel.PodTLS(fe)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, err := mtlsRel.Post(ctx, "backend-svc", 8080, "/process", `{"request_id": "as-frontend"}`, cfg); err != nil || status != 200 {
		t.Errorf("with the frontend's certificate: status %d err %v body %s, want 200", status, err, body)
	}
	cl, _ := mtlsRel.Pod("client")
	cfg, err = mtlsRel.PodTLS(cl)
	if err != nil {
		t.Fatal(err)
	}
	if status, _, err := mtlsRel.Post(ctx, "backend-svc", 8080, "/process", `{"request_id": "as-client"}`, cfg); err != nil || status != 403 {
		t.Errorf("with the client's certificate (not in ALLOWED_CLIENTS): status %d err %v, want 403", status, err)
	}
	be, _ := mtlsRel.Pod("backend")
	m, err := demo.Scrape(ctx, be.IP, 8081)
	if err != nil {
		t.Fatal(err)
	}
	if m.HandshakeFailures["no_client_certificate"] < 1 || m.HandshakeFailures["unknown_authority"] < 1 {
		t.Errorf("backend handshake failures %v, want no_client_certificate and unknown_authority counted", m.HandshakeFailures)
	}
}

// A pod naming an Issuer that does not exist is warned about at admission
// (the webhook's --issuer-check=warn) instead of waiting silently for a
// certificate that never comes.
func TestMissingIssuerIsWarnedAtAdmission(t *testing.T) {
	setup(t)
	w := &controlplane.Warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "no-issuer", Namespace: nsMTLS, Annotations: map[string]string{
			"mtls.demo/enable": "true", "mtls.demo/issuer": "no-such-issuer"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/mtls-demo/demo-backend:0.1.0"}}},
	}
	// The demo runs the webhook with --issuer-check=warn: a refusal here is
	// a regression, not an equivalent.
	if _, err := cs.CoreV1().Pods(nsMTLS).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("refused, want admitted with a warning (--issuer-check=warn): %v", err)
	}
	msgs := w.Take()
	if !slices.ContainsFunc(msgs, func(s string) bool { return strings.Contains(s, "no-such-issuer") }) {
		t.Errorf("admission warnings %q do not mention the missing issuer no-such-issuer", msgs)
	}
}

// The apps run as the non-root user of their securityContext (the chart's
// and the client's 65532:65532), without privileges and on a read-only /, as
// a kubelet would start them, and still read tls.key: the webhook derived csi.cert-manager.io/fs-group from
// runAsGroup, so the driver wrote the files 0440 owned by root and that
// group. Without it only root could read the key.
func TestAppsRunAsNonRootAndReadTheKeyThroughItsGroup(t *testing.T) {
	setup(t)
	for _, role := range []string{"frontend", "backend", "client"} {
		info, ok := mtlsRel.Pod(role)
		if !ok || !info.Ready {
			t.Fatalf("no ready %s pod", role)
		}
		p, err := env.Clientset.CoreV1().Pods(nsMTLS).Get(context.Background(), info.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range p.Spec.Volumes {
			if v.CSI != nil && v.CSI.VolumeAttributes["csi.cert-manager.io/fs-group"] != "65532" {
				t.Errorf("%s: fs-group attribute %q, want 65532 (from runAsGroup)", role, v.CSI.VolumeAttributes["csi.cert-manager.io/fs-group"])
			}
		}
		if len(p.Status.ContainerStatuses) != 1 {
			t.Fatalf("%s: container statuses %+v", role, p.Status.ContainerStatuses)
		}
		pid := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "mtls-demo://")
		status, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532", "NoNewPrivs:\t1", "CapEff:\t0000000000000000"} {
			if !strings.Contains(string(status), want) {
				t.Errorf("%s (pid %s) does not run as 65532:65532 without privileges: /proc status lacks %q", role, pid, want)
			}
		}
		// readOnlyRootFilesystem: / is read-only in the app's mount namespace.
		mounts, err := os.ReadFile("/proc/" + pid + "/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		rootRO := false
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
				rootRO = strings.HasPrefix(f[5], "ro")
			}
		}
		if !rootRO {
			t.Errorf("%s (pid %s): / is writable, want read-only (readOnlyRootFilesystem)", role, pid)
		}
		fi, err := os.Stat(filepath.Join(info.Volumes["mtls-certs"], "tls.key"))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o440 || st.Uid != 0 || st.Gid != 65532 {
			t.Errorf("%s: tls.key is %v %d:%d, want -r--r----- 0:65532", role, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
}

// A container whose liveness probe keeps failing is killed and restarted,
// as a kubelet does; its readiness probe alone would only take it out of
// its Services.
func TestFailingLivenessProbeRestartsTheContainer(t *testing.T) {
	setup(t)
	ctx := context.Background()
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, FailureThreshold: 2}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "liveness", Namespace: nsPlain},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "ghcr.io/mtls-demo/demo-backend:0.1.0",
			Env:            []corev1.EnvVar{{Name: "USE_MTLS", Value: "false"}},
			ReadinessProbe: probe("/healthz"),
			LivenessProbe:  probe("/no-such-page"),
		}}},
	}
	if _, err := env.Clientset.CoreV1().Pods(nsPlain).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Clientset.CoreV1().Pods(nsPlain).Delete(ctx, p.Name, metav1.DeleteOptions{}) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := env.Clientset.CoreV1().Pods(nsPlain).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cs := got.Status.ContainerStatuses; len(cs) == 1 && cs[0].RestartCount >= 1 {
			if last := cs[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 137 {
				t.Errorf("last termination %+v, want exit code 137 (SIGKILL)", last)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restart within 30 s of a liveness probe answering 404; statuses %+v", got.Status.ContainerStatuses)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
