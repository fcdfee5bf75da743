package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mtls-demo/mtls-webhook/internal/stats"
)

// benchPods is how many pods are created each way.
const benchPods = 300

// BenchmarkPodCreateLatency measures what the webhook adds to a pod
// creation, end to end through the API server: the same opted-in pod is
// created alternately in a namespace the chart's configuration selects
// (API server → webhook → patch → validation → etcd) and in one it
// excludes with mtls.demo/injection=disabled (no webhook call), so both
// series share the same moment, caches, etcd and client. Run it with
// `make bench-integration`.
func BenchmarkPodCreateLatency(b *testing.B) {
	cs, _, c := clients(b)
	with := namespace(b, cs, "bench", nil)
	without := namespace(b, cs, "bench", map[string]string{"mtls.demo/injection": "disabled"})
	for _, ns := range []string{with, without} {
		createIssuer(b, c, ns, "ca", cmmeta.ConditionTrue)
	}
	installChartWebhook(b, cs, "bench", with)

	// Three more series split the added time into its parts:
	//   - noop: a webhook that answers "allowed, no patch" at once, which is
	//     what the API server spends on calling any webhook (matchConditions,
	//     review encoding, TLS round trip);
	//   - static: a webhook that answers at once with the very patch
	//     mtls-webhook returned for this pod, cached, which adds the API
	//     server's cost of applying a patch (encode, apply, decode, compare,
	//     default, reinvoke the in-tree plugins) and of the larger pod;
	//   - preinjected: the pod as mtls-webhook left it, created with no
	//     webhook at all, which is the larger pod alone (what hand-written
	//     cert-manager YAML costs too).
	// mtls-webhook's own share is then "with" minus "static".
	noop := namespace(b, cs, "bench-noop", nil)
	static := namespace(b, cs, "bench-static", nil)
	for _, ns := range []string{noop, static} {
		createIssuer(b, c, ns, "ca", cmmeta.ConditionTrue)
	}
	var noopCalls atomic.Int64
	noopSrv := tlsServer(b, suite.webhook.ca, reviewHandler(func(*http.Request, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		noopCalls.Add(1)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}))
	install(b, cs, chartWebhookConfig(b, "bench-noop", noopSrv.URL+"/mutate-pods", suite.webhook.ca.CertPEM))
	staticSrv := tlsServer(b, suite.webhook.ca, cachedPatchHandler(b))
	install(b, cs, chartWebhookConfig(b, "bench-static", staticSrv.URL+"/mutate-pods", suite.webhook.ca.CertPEM))
	eventually(b, 30*time.Second, "the API server to call the no-op webhook", func(ctx context.Context) error {
		_, _ = cs.CoreV1().Pods(noop).Create(ctx, pod("probe", optIn("ca")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if noopCalls.Load() == 0 {
			return fmt.Errorf("not called yet")
		}
		return nil
	})
	eventually(b, 30*time.Second, "the API server to call the cached-patch webhook", func(ctx context.Context) error {
		got, err := cs.CoreV1().Pods(static).Create(ctx, pod("probe", optIn("ca")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if !injected(got) {
			return fmt.Errorf("not patched yet")
		}
		return nil
	})
	// One more: mtls-webhook plus the chart's ValidatingAdmissionPolicy
	// (on by default), which checks every opted-in pod for the volume: what
	// installing the chart costs a pod create, not only the webhook.
	vap := namespace(b, cs, "bench-vap", nil)
	createIssuer(b, c, vap, "ca", cmmeta.ConditionTrue)
	installChartWebhook(b, cs, "bench-vap", vap)
	installChartPolicy(b, cs, "bench-vap")
	ctx := ctxFor(b, 10*time.Minute)

	create := func(ns string, p *corev1.Pod, wantInjected bool) time.Duration {
		start := time.Now()
		got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if injected(got) != wantInjected {
			b.Fatalf("pod %s/%s injected=%v, want %v", ns, got.Name, injected(got), wantInjected)
		}
		return d
	}
	plain := func(name string) *corev1.Pod { return pod(name, optIn("ca")) }

	// The pre-injected pod is what the API server stored for an injected
	// one, less what it fills in itself on create.
	sample, err := cs.CoreV1().Pods(with).Create(ctx, plain("sample"), metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	preinjected := func(name string) *corev1.Pod {
		p := &corev1.Pod{Spec: *sample.Spec.DeepCopy()}
		p.Name, p.Labels, p.Annotations = name, sample.Labels, sample.Annotations
		return p
	}

	type series struct {
		name     string
		ns       string
		pod      func(string) *corev1.Pod
		injected bool
		took     []time.Duration
	}
	for i := 0; i < b.N; i++ {
		all := []*series{
			{name: "with", ns: with, pod: plain, injected: true},
			{name: "without", ns: without, pod: plain},
			{name: "noop", ns: noop, pod: plain},
			{name: "static", ns: static, pod: plain, injected: true},
			{name: "preinjected", ns: without, pod: preinjected, injected: true},
			{name: "with-policy", ns: vap, pod: plain, injected: true},
		}
		// Warm up connections (client → API server → webhooks) and caches.
		for j := range 30 {
			for _, s := range all {
				create(s.ns, s.pod(fmt.Sprintf("warm-%s-%d-%d", s.name, i, j)), s.injected)
			}
		}
		handlerBefore := handlerSeconds(b)
		b.ResetTimer()
		for j := range benchPods {
			// Rotate which goes first, so no series always follows the
			// same other one's etcd write.
			for k := range all {
				s := all[(j+k)%len(all)]
				s.took = append(s.took, create(s.ns, s.pod(fmt.Sprintf("p-%s-%d-%d", s.name, i, j)), s.injected))
			}
		}
		b.StopTimer()
		lw, lo := all[0].took, all[1].took
		report(b, lw, lo)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		p50 := func(s *series) time.Duration { return stats.Percentile(s.took, 50) }
		w50, o50, n50, s50, pre50 := p50(all[0]), p50(all[1]), p50(all[2]), p50(all[3]), p50(all[4])
		b.ReportMetric(ms(n50), "p50-noop-ms")
		b.ReportMetric(ms(s50), "p50-static-ms")
		b.ReportMetric(ms(pre50), "p50-preinjected-ms")
		b.ReportMetric(ms(w50-s50), "p50-own-ms")
		b.ReportMetric(ms(n50-o50), "p50-any-webhook-ms")
		b.ReportMetric(ms(pre50-o50), "p50-larger-pod-ms")
		b.ReportMetric(ms(s50-n50-(pre50-o50)), "p50-patch-apply-ms")
		v50 := p50(all[5])
		b.ReportMetric(ms(v50-o50), "p50-added-with-policy-ms")
		fmt.Fprintf(os.Stderr, "  with the chart's ValidatingAdmissionPolicy too: p50 %7.2f ms (added %+.2f ms)\n", ms(v50), ms(v50-o50))
		fmt.Fprintf(os.Stderr, "  no-op webhook    p50 %7.2f ms  (calling any webhook:        %+.2f ms)\n"+
			"  pre-injected pod p50 %7.2f ms  (the larger pod, no webhook: %+.2f ms)\n"+
			"  cached patch     p50 %7.2f ms  (applying the patch:         %+.2f ms)\n"+
			"  mtls-webhook's own share (with − cached patch):             %+.2f ms\n",
			ms(n50), ms(n50-o50), ms(pre50), ms(pre50-o50), ms(s50), ms(s50-n50-(pre50-o50)), ms(w50-s50))
		// The webhook's own histogram splits the added time into its
		// handler and the rest (API server call, TLS, JSON, patch apply,
		// larger object to validate and store).
		after := handlerSeconds(b)
		n := after.count - handlerBefore.count
		if n <= 0 {
			b.Fatalf("mtls_webhook_mutation_duration_seconds counted no reviews for %d injected pods", len(lw))
		}
		mean := (after.sum - handlerBefore.sum) / n * 1000
		b.ReportMetric(mean, "handler-mean-ms")
		fmt.Fprintf(os.Stderr, "  webhook handler  mean %7.2f ms over %.0f reviews (mtls_webhook_mutation_duration_seconds)\n", mean, n)
		if i+1 < b.N {
			// Fresh pods for the next round.
			for _, ns := range []string{with, without, noop, static, vap} {
				if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

func report(b *testing.B, with, without []time.Duration) {
	w50, w99 := stats.Percentile(with, 50), stats.Percentile(with, 99)
	o50, o99 := stats.Percentile(without, 50), stats.Percentile(without, 99)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(w50), "p50-with-ms")
	b.ReportMetric(ms(w99), "p99-with-ms")
	b.ReportMetric(ms(o50), "p50-without-ms")
	b.ReportMetric(ms(o99), "p99-without-ms")
	b.ReportMetric(ms(w50-o50), "p50-added-ms")
	b.ReportMetric(float64(w50)/float64(o50), "p50-ratio")
	verdict := "within"
	if w50-o50 > 1500*time.Microsecond {
		verdict = "OVER"
	}
	fmt.Fprintf(os.Stderr, "\npod create latency through the API server, %d pods each way, alternating:\n"+
		"  without webhook  p50 %7.2f ms  p99 %7.2f ms\n"+
		"  with webhook     p50 %7.2f ms  p99 %7.2f ms\n"+
		"  added at p50     %+7.2f ms (ratio %.2f, p99 ratio %.2f) — %s the 1.5 ms target\n",
		len(with), ms(o50), ms(o99), ms(w50), ms(w99), ms(w50-o50),
		float64(w50)/float64(o50), float64(w99)/float64(o99), verdict)
}

type histSample struct{ sum, count float64 }

// handlerSeconds reads the sum and count of the webhook's
// mtls_webhook_mutation_duration_seconds histogram.
func handlerSeconds(b *testing.B) histSample {
	b.Helper()
	mf := metricFamilies(b, suite.metricsURL)["mtls_webhook_mutation_duration_seconds"]
	if len(mf.GetMetric()) == 0 {
		b.Fatalf("%s has no mtls_webhook_mutation_duration_seconds histogram", suite.metricsURL)
	}
	var h histSample
	for _, m := range mf.GetMetric() {
		h.sum += m.GetHistogram().GetSampleSum()
		h.count += float64(m.GetHistogram().GetSampleCount())
	}
	return h
}

// cachedPatchHandler answers every review with the patch mtls-webhook
// returned for the first one it saw, at once: the API server's cost of
// applying that very patch, without the webhook's own. The first review is
// forwarded to the suite's webhook to learn the patch.
func cachedPatchHandler(b *testing.B) http.Handler {
	forward := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: suite.webhook.ca.Pool(), MinVersion: tls.VersionTLS12},
	}}
	var (
		mu    sync.Mutex
		patch []byte
	)
	learn := func(r *http.Request, req *admissionv1.AdmissionRequest) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if patch != nil {
			return patch, nil
		}
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
		if err != nil {
			return nil, err
		}
		fwd, err := http.NewRequestWithContext(r.Context(), http.MethodPost, suite.webhookURL, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		fwd.Header.Set("Content-Type", "application/json")
		resp, err := forward.Do(fwd)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
			return nil, err
		}
		if review.Response == nil || !review.Response.Allowed || len(review.Response.Patch) == 0 {
			return nil, fmt.Errorf("mtls-webhook returned no patch: %+v", review.Response)
		}
		patch = review.Response.Patch
		return patch, nil
	}
	jsonPatch := admissionv1.PatchTypeJSONPatch
	return reviewHandler(func(r *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		p, err := learn(r, req)
		if err != nil {
			b.Error(err)
			return &admissionv1.AdmissionResponse{Result: &metav1.Status{Code: http.StatusInternalServerError, Message: err.Error()}}
		}
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: p, PatchType: &jsonPatch}
	})
}

// installChartPolicy creates the chart's ValidatingAdmissionPolicies and
// their bindings (the require-csi policy and the csi-guard, as the chart
// installs them), the bindings narrowed to namespaces labelled caseLabel=name
// (ns) or name-probe, and waits until the API server enforces them: it loads
// policies asynchronously, and counts only refusals, so a pod in the probe
// namespace, which no webhook injects, shows when it refuses.
func installChartPolicy(b *testing.B, cs kubernetes.Interface, name string) {
	b.Helper()
	probe := namespace(b, cs, name+"-probe", nil)
	installPolicies(b, cs, renderChartAdmission(b), name, name+"-probe")
	requireCSI := "it-" + name + "-require-csi"
	eventually(b, 30*time.Second, "the API server to enforce the chart's policy", func(ctx context.Context) error {
		_, err := cs.CoreV1().Pods(probe).Create(ctx, pod("probe", optIn("ca")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), requireCSI) {
			return fmt.Errorf("policy %s not enforced yet (%w)", requireCSI, err)
		}
		return nil
	})
}
