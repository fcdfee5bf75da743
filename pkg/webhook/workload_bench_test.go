package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// deploymentReview is the AdmissionReview the API server sends for the
// peer Deployment (testdata/peer-deployment.json: the peer pod's template,
// with the defaults and managed fields a created Deployment carries).
func deploymentReview(tb testing.TB) []byte {
	tb.Helper()
	return workloadReview("apps", "deployments", "", "CREATE", "prod", peerDeployment(tb), nil)
}

// serveOnce posts body to h and fails unless the answer is an allowed
// review.
func serveOnce(b *testing.B, h http.Handler, path string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"allowed":true`)) {
		b.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
	}
}

// BenchmarkDeploymentFloor is what any handler of the peer Deployment pays
// at least: decoding the typed Deployment and encoding it again.
func BenchmarkDeploymentFloor(b *testing.B) {
	raw := peerDeployment(b)
	b.ReportAllocs()
	for b.Loop() {
		var d appsv1.Deployment
		if err := json.Unmarshal(raw, &d); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(&d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeHTTPDeployment is /validate-workloads on the peer
// Deployment: AdmissionReview in, the template through the pipeline,
// AdmissionReview out (no TLS).
func BenchmarkServeHTTPDeployment(b *testing.B) {
	h := NewWorkloadHTTPHandler(&Handler{Injector: testInjector(b)})
	body := deploymentReview(b)
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, h, WorkloadPath, body)
	}
}

// BenchmarkServeHTTPDeploymentVsFloor times the Deployment floor and
// /validate-workloads on the same Deployment inside one loop and reports
// their ratio, which holds on a noisy machine where absolute times drift.
func BenchmarkServeHTTPDeploymentVsFloor(b *testing.B) {
	raw := peerDeployment(b)
	h := NewWorkloadHTTPHandler(&Handler{Injector: testInjector(b)})
	body := deploymentReview(b)
	benchmarkVsFloor(b, func() {
		var d appsv1.Deployment
		if err := json.Unmarshal(raw, &d); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(&d); err != nil {
			b.Fatal(err)
		}
	}, func() { serveOnce(b, h, WorkloadPath, body) })
}

// BenchmarkServeHTTPVsFloor is BenchmarkServeHTTP (the pod endpoint) and
// BenchmarkFloor (the peer pod's decode+encode) inside one loop, with their
// ratio.
func BenchmarkServeHTTPVsFloor(b *testing.B) {
	raw := peerPod(b)
	h := NewHTTPHandler(&Handler{Injector: testInjector(b)})
	body := review(b, raw)
	benchmarkVsFloor(b, func() {
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(&pod); err != nil {
			b.Fatal(err)
		}
	}, func() { serveOnce(b, h, Path, body) })
}

// benchmarkVsFloor runs floor, then serve, each iteration, and reports the
// time of each per op and serve ÷ floor.
func benchmarkVsFloor(b *testing.B, floor, serve func()) {
	var tf, ts time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		floor()
		t1 := time.Now()
		serve()
		t2 := time.Now()
		tf += t1.Sub(t0)
		ts += t2.Sub(t1)
	}
	b.ReportMetric(float64(tf.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(ts.Nanoseconds())/float64(b.N), "serve-ns/op")
	b.ReportMetric(float64(ts)/float64(tf), "serve/floor")
}
