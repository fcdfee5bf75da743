package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// TestReinvocation: a later mutating webhook (here a sidecar injector of
// the test's own) adds a container after ours ran; with the chart's
// reinvocationPolicy IfNeeded the API server calls ours again, which
// injects the new container without duplicating anything.
func TestReinvocation(t *testing.T) {
	cs, _, c := clients(t)
	ns := namespace(t, cs, "reinvoke", nil)
	createIssuer(t, c, ns, "ca", cmmeta.ConditionTrue)
	// "it-reinvoke" sorts before "it-reinvoke-sidecar": the API server
	// calls configurations in name order, so ours runs first.
	installChartWebhook(t, cs, "reinvoke", ns)

	var sidecarCalls atomic.Int32
	sidecar := tlsServer(t, suite.webhook.ca, reviewHandler(func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		sidecarCalls.Add(1)
		var p corev1.Pod
		if err := json.Unmarshal(req.Object.Raw, &p); err != nil {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Message: err.Error()}}
		}
		if p.Labels["sidecar"] == "no" {
			return &admissionv1.AdmissionResponse{Allowed: true}
		}
		patch := `[{"op":"add","path":"/spec/containers/-","value":{"name":"sidecar","image":"registry.example/proxy:1"}},` +
			`{"op":"add","path":"/metadata/labels/sidecar","value":"injected"}]`
		pt := admissionv1.PatchTypeJSONPatch
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(patch), PatchType: &pt}
	}))
	fail, none, never := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.NeverReinvocationPolicy
	url := sidecar.URL + "/sidecar"
	install(t, cs, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "it-reinvoke-sidecar"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "sidecar.it.mtls.demo",
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: suite.webhook.ca.CertPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{caseLabel: "reinvoke"}},
			FailurePolicy:      &fail,
			SideEffects:        &none,
			ReinvocationPolicy: &never,
		}},
	})
	eventually(t, 30*time.Second, "the sidecar webhook to be called", func(ctx context.Context) error {
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod("probe", optIn("ca")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if len(got.Spec.Containers) != 2 || !injected(got) {
			return fmt.Errorf("dry run: %d containers, injected=%v", len(got.Spec.Containers), injected(got))
		}
		return nil
	})

	ctx := ctxFor(t, 30*time.Second)
	before, sidecarBefore := admissions(t, suite.metricsURL), sidecarCalls.Load()
	got, err := cs.CoreV1().Pods(ns).Create(ctx, pod("reinvoked", optIn("ca")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := admissions(t, suite.metricsURL)
	if d := after[webhookResultInjected] - before[webhookResultInjected]; d != 2 {
		t.Errorf("our webhook injected %v times for one pod, want 2 (first call, then the reinvocation)", d)
	}
	if d := sidecarCalls.Load() - sidecarBefore; d != 1 {
		t.Errorf("sidecar webhook called %d times, want 1", d)
	}
	if got.Labels["sidecar"] != "injected" || len(got.Spec.Containers) != 2 {
		t.Fatalf("the sidecar webhook's changes are missing: labels %v, %d containers", got.Labels, len(got.Spec.Containers))
	}
	// Exactly one volume, and the sidecar added after our first call has
	// its mount and env vars too, each once.
	assertInjected(t, got, "ca", annotations.DefaultMountPath)

	// IfNeeded, not Always: when the later webhook changes nothing, ours is
	// called once.
	labelled := pod("not-reinvoked", optIn("ca"))
	labelled.Labels["sidecar"] = "no"
	before = admissions(t, suite.metricsURL)
	got, err = cs.CoreV1().Pods(ns).Create(ctx, labelled, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after = admissions(t, suite.metricsURL)
	if d := after[webhookResultInjected] - before[webhookResultInjected]; d != 1 {
		t.Errorf("our webhook injected %v times when nothing changed after it, want 1", d)
	}
	assertInjected(t, got, "ca", annotations.DefaultMountPath)
}

// TestWebhookDownFailsClosed: with the webhook gone (the process killed),
// opted-in pods are refused — never admitted without their certificate —
// while pods that did not opt in and pods in excluded namespaces
// (kube-system, or labelled mtls.demo/injection=disabled) are created.
func TestWebhookDownFailsClosed(t *testing.T) {
	cs, _, _ := clients(t)
	ca, err := newCA("down-ca")
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := startWebhookProcess(t, "down", ca)
	ns := namespace(t, cs, "down", nil)
	optedOut := namespace(t, cs, "down", map[string]string{"mtls.demo/injection": "disabled"})
	// kube-system gets the test's label too, so that only the chart's own
	// exclusion keeps its pods away from the dead webhook.
	labelNamespace(t, cs, "kube-system", caseLabel, "down")
	install(t, cs, chartWebhookConfig(t, "down", proc.url, ca.CertPEM))
	waitInjecting(t, ns)

	proc.kill()

	ctx := ctxFor(t, 60*time.Second)
	start := time.Now()
	_, err = cs.CoreV1().Pods(ns).Create(ctx, pod("opted-in", optIn("ca")), metav1.CreateOptions{})
	errorContains(t, err, `failed calling webhook "inject.mtls.demo"`, "connection refused")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusal took %s; a dead webhook must fail fast", d)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "opted-in", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("opted-in pod stored without the webhook (get: %v)", err)
	}

	for _, tc := range []struct {
		ns, name string
		ann      map[string]string
	}{
		{ns, "plain", nil},
		{ns, "enable-false", map[string]string{annotations.Enable: "false"}},
		{optedOut, "opted-in-excluded-ns", optIn("ca")},
		{"kube-system", "it-down-opted-in", optIn("ca")},
	} {
		got, err := cs.CoreV1().Pods(tc.ns).Create(ctx, pod(tc.name, tc.ann), metav1.CreateOptions{})
		if err != nil {
			t.Errorf("%s/%s: %v", tc.ns, tc.name, err)
			continue
		}
		assertUntouched(t, got, tc.ann)
		if tc.ns == "kube-system" {
			_ = cs.CoreV1().Pods(tc.ns).Delete(ctx, tc.name, metav1.DeleteOptions{})
		}
	}
}

// labelNamespace sets a label on an existing namespace for the test's
// duration.
func labelNamespace(t testing.TB, cs kubernetes.Interface, name, key, value string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, key)
		if _, err := cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Errorf("unlabelling namespace %s: %v", name, err)
		}
	})
}

// TestSlowWebhookTimesOut: a webhook slower than the configuration's
// timeoutSeconds makes the API server give up after that time and refuse
// the opted-in pod (failurePolicy Fail), instead of hanging the client.
func TestSlowWebhookTimesOut(t *testing.T) {
	cs, _, _ := clients(t)
	ns := namespace(t, cs, "slow", nil)
	var calls atomic.Int32
	slow := tlsServer(t, suite.webhook.ca, reviewHandler(func(r *http.Request, _ *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		calls.Add(1)
		// Far longer than timeoutSeconds; returns early once the API
		// server hangs up, so the test server closes promptly.
		select {
		case <-time.After(20 * time.Second):
			return &admissionv1.AdmissionResponse{Allowed: true}
		case <-r.Context().Done():
			return nil
		}
	}))
	// The chart's value, set to its lower bound: 1 second.
	install(t, cs, chartWebhookConfig(t, "slow", slow.URL+"/mutate-pods", suite.webhook.ca.CertPEM, "mutatingWebhook.timeoutSeconds=1"))
	eventually(t, 30*time.Second, "the API server to call the slow webhook", func(ctx context.Context) error {
		if calls.Load() > 0 {
			return nil
		}
		_, _ = cs.CoreV1().Pods(ns).Create(ctx, pod("probe", optIn("ca")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return fmt.Errorf("not called yet")
	})

	ctx := ctxFor(t, 30*time.Second)
	start := time.Now()
	_, err := cs.CoreV1().Pods(ns).Create(ctx, pod("slow", optIn("ca")), metav1.CreateOptions{})
	elapsed := time.Since(start)
	errorContains(t, err, `failed calling webhook "inject.mtls.demo"`)
	if !strings.Contains(err.Error(), "deadline exceeded") && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("error %q does not say the webhook timed out", err)
	}
	if elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("refusal took %s, want about timeoutSeconds (1s)", elapsed)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "slow", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod stored although the webhook timed out (get: %v)", err)
	}
}

// TestServingCertificateRotation: while pods are created in a loop, the
// webhook's serving certificate is renewed in place, then its CA is rolled
// over (both CAs in caBundle, then a leaf from the new CA, then the old CA
// dropped). No pod creation may fail, every pod is injected, and the
// webhook ends up serving the last leaf.
//
// The API server keeps its connections to a webhook open, so a rotation
// would otherwise only be tested on the next caBundle change. A TCP proxy
// between the two cuts every connection after each step, as a webhook pod
// restart or an idle timeout would, so the next pods are admitted over new
// TLS handshakes against the certificate and caBundle of that step.
func TestServingCertificateRotation(t *testing.T) {
	cs, _, c := clients(t)
	oldCA, err := newCA("rotation-ca-1")
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := startWebhookProcess(t, "rotation", oldCA)
	proxy := newTCPProxy(t, proc.addr)
	ns := namespace(t, cs, "rotate", nil)
	createIssuer(t, c, ns, "ca", cmmeta.ConditionTrue)
	mwc := chartWebhookConfig(t, "rotate", "https://"+proxy.addr()+"/mutate-pods", oldCA.CertPEM)
	install(t, cs, mwc)
	waitInjecting(t, ns)

	ctx := ctxFor(t, 5*time.Minute)
	var (
		created  atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
		// Workers hold gate for reading around each creation; cutting the
		// connections takes it for writing, so no request is in flight
		// when its connection is cut (that would be a failure of the test
		// set-up, not of the rotation).
		gate sync.RWMutex
	)
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loopCtx.Err() == nil; i++ {
				gate.RLock()
				got, err := cs.CoreV1().Pods(ns).Create(loopCtx, pod(fmt.Sprintf("p-%d-%d", w, i), optIn("ca")), metav1.CreateOptions{})
				gate.RUnlock()
				if loopCtx.Err() != nil {
					return
				}
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case !injected(got):
					failures = append(failures, "pod "+got.Name+" stored without injection")
				default:
					created.Add(1)
				}
				mu.Unlock()
			}
		}()
	}
	// churn cuts the API server's connections to the webhook, then lets the
	// loop create n more pods, which must open new ones.
	churn := func(n int64, step string) {
		t.Helper()
		gate.Lock()
		proxy.cut()
		// Let the API server's transport see the closed connections before
		// it picks one for the next request.
		time.Sleep(50 * time.Millisecond)
		accepted := proxy.accepted.Load()
		gate.Unlock()

		target := created.Load() + n
		failed := func() (int, string) {
			mu.Lock()
			defer mu.Unlock()
			if len(failures) == 0 {
				return 0, ""
			}
			return len(failures), failures[0]
		}
		eventually(t, 60*time.Second, fmt.Sprintf("%d more pods after %s", n, step), func(context.Context) error {
			if nf, _ := failed(); nf > 0 {
				return nil // reported below, without waiting any longer
			}
			if got := created.Load(); got < target {
				return fmt.Errorf("%d/%d pods", got, target)
			}
			return nil
		})
		if nf, first := failed(); nf > 0 {
			stopLoop()
			wg.Wait()
			t.Fatalf("after %s: %d pod creations failed, want 0; first: %s", step, nf, first)
		}
		if proxy.accepted.Load() == accepted {
			t.Fatalf("after %s the API server opened no new connection to the webhook: the step was not exercised", step)
		}
	}
	// waitServing waits until the webhook presents leaf (it reloads the
	// files on change, with a 10s poll as a fallback).
	waitServing := func(leaf *servingCert, step string) {
		t.Helper()
		eventually(t, 30*time.Second, "the webhook to serve the certificate of "+step, func(context.Context) error {
			serial, err := servedSerial(proc.addr, leaf.ca.Pool())
			if err != nil {
				return err
			}
			if serial.Cmp(leaf.serial) != 0 {
				return fmt.Errorf("serving serial %x, want %x", serial, leaf.serial)
			}
			return nil
		})
	}
	// setBundle updates caBundle. The API server applies configuration
	// changes asynchronously (informer) with no status to wait on: a
	// margin of 3s is far beyond the usual milliseconds, and too short a
	// margin shows up as creation failures, never as a false pass.
	setBundle := func(bundle []byte) {
		t.Helper()
		api := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
		cur, err := api.Get(ctx, mwc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range cur.Webhooks {
			cur.Webhooks[i].ClientConfig.CABundle = bundle
		}
		if _, err := api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
	}

	churn(30, "the start")

	// 1. Renewal: new key and certificate from the same CA.
	renewed, err := oldCA.issue()
	if err != nil {
		t.Fatal(err)
	}
	if err := renewed.install(proc.certDir); err != nil {
		t.Fatal(err)
	}
	waitServing(renewed, "the renewal")
	churn(40, "the renewal")

	// 2. CA rollover, step one: trust both CAs.
	newCA, err := newCA("rotation-ca-2")
	if err != nil {
		t.Fatal(err)
	}
	setBundle(append(append([]byte{}, oldCA.CertPEM...), newCA.CertPEM...))
	churn(40, "the two-CA bundle")

	// 3. Serve a leaf from the new CA.
	rolled, err := newCA.issue()
	if err != nil {
		t.Fatal(err)
	}
	if err := rolled.install(proc.certDir); err != nil {
		t.Fatal(err)
	}
	waitServing(rolled, "the new CA's leaf")
	churn(40, "the new CA's leaf")

	// 4. Drop the old CA: every new connection must verify against the new
	// one alone.
	setBundle(newCA.CertPEM)
	churn(40, "dropping the old CA")
	if n := created.Load(); n < 200 {
		churn(200-n, "reaching 200 pods")
	}

	stopLoop()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d pods created during the rotation over %d connections", created.Load(), proxy.accepted.Load())
	if created.Load() < 200 {
		t.Errorf("%d pods created, want at least 200", created.Load())
	}
	if len(failures) != 0 {
		t.Errorf("%d pod creations failed during the rotation, want 0; first: %s", len(failures), failures[0])
	}
	// The old CA no longer verifies what is served; the new one does.
	if _, err := servedSerial(proc.addr, oldCA.Pool()); err == nil {
		t.Error("the webhook still presents a certificate the old CA verifies")
	}
	serial, err := servedSerial(proc.addr, newCA.Pool())
	if err != nil {
		t.Fatal(err)
	}
	if serial.Cmp(rolled.serial) != 0 {
		t.Errorf("serving serial %x, want the new CA's leaf %x", serial, rolled.serial)
	}
}

// tcpProxy forwards loopback TCP connections to a backend and can cut them
// all at once. TLS passes through untouched: the handshake is between the
// API server and the webhook.
type tcpProxy struct {
	ln       net.Listener
	backend  string
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func newTCPProxy(t testing.TB, backend string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		out, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(in, out)
		go pipe(out, in)
	}
}

// cut closes every open connection, as a restarting peer would.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}
