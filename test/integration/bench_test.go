package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

	// A third series goes through a webhook that answers "allowed, no
	// patch" at once: what the API server itself spends on calling any
	// webhook (review encoding, TLS, matchConditions), so the figure can be
	// split into that and what mtls-webhook adds on top of it.
	noop := namespace(b, cs, "bench-noop", nil)
	createIssuer(b, c, noop, "ca", cmmeta.ConditionTrue)
	var noopCalls atomic.Int64
	noopSrv := tlsServer(b, suite.webhook.ca, reviewHandler(func(*http.Request, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		noopCalls.Add(1)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}))
	install(b, cs, chartWebhookConfig(b, "bench-noop", noopSrv.URL+"/mutate-pods", suite.webhook.ca.pem))
	eventually(b, 30*time.Second, "the API server to call the no-op webhook", func(ctx context.Context) error {
		_, _ = cs.CoreV1().Pods(noop).Create(ctx, pod("probe", optIn("ca")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if noopCalls.Load() == 0 {
			return errorf("not called yet")
		}
		return nil
	})
	ctx := ctxFor(b, 10*time.Minute)

	create := func(ns, name string, wantInjected bool) time.Duration {
		p := pod(name, optIn("ca"))
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

	for i := 0; i < b.N; i++ {
		// Warm up connections (client → API server → webhook) and caches.
		for j := range 30 {
			name := fmt.Sprintf("warm-%d-%d", i, j)
			create(with, name, true)
			create(without, name, false)
			create(noop, name, false)
		}
		var lw, lo, ln []time.Duration
		handlerBefore := handlerSeconds(b)
		b.ResetTimer()
		for j := range benchPods {
			n := fmt.Sprintf("p-%d-%d", i, j)
			// Alternate which goes first, so neither series always
			// follows the other's etcd write.
			switch j % 3 {
			case 0:
				lw = append(lw, create(with, n, true))
				lo = append(lo, create(without, n, false))
				ln = append(ln, create(noop, n, false))
			case 1:
				lo = append(lo, create(without, n, false))
				ln = append(ln, create(noop, n, false))
				lw = append(lw, create(with, n, true))
			default:
				ln = append(ln, create(noop, n, false))
				lw = append(lw, create(with, n, true))
				lo = append(lo, create(without, n, false))
			}
		}
		b.StopTimer()
		report(b, lw, lo)
		n50 := stats.Percentile(ln, 50)
		b.ReportMetric(float64(n50)/float64(time.Millisecond), "p50-noop-ms")
		b.ReportMetric(float64(stats.Percentile(lw, 50)-n50)/float64(time.Millisecond), "p50-added-vs-noop-ms")
		fmt.Fprintf(os.Stderr, "  no-op webhook    p50 %7.2f ms  (mtls-webhook adds %+.2f ms over a webhook that does nothing)\n",
			float64(n50)/float64(time.Millisecond), float64(stats.Percentile(lw, 50)-n50)/float64(time.Millisecond))
		// The webhook's own histogram splits the added time into its
		// handler and the rest (API server call, TLS, JSON, patch apply,
		// larger object to validate and store).
		after := handlerSeconds(b)
		if n := after.count - handlerBefore.count; n > 0 {
			mean := (after.sum - handlerBefore.sum) / n * 1000
			b.ReportMetric(mean, "handler-mean-ms")
			fmt.Fprintf(os.Stderr, "  webhook handler  mean %7.2f ms over %.0f reviews (mtls_webhook_mutation_duration_seconds)\n", mean, n)
		}
		if i+1 < b.N {
			// Fresh pods for the next round.
			for _, ns := range []string{with, without, noop} {
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
	req, _ := http.NewRequestWithContext(ctxFor(b, 10*time.Second), http.MethodGet, suite.metricsURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var h histSample
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "mtls_webhook_mutation_duration_seconds_sum":
			h.sum = v
		case "mtls_webhook_mutation_duration_seconds_count":
			h.count = v
		}
	}
	return h
}
