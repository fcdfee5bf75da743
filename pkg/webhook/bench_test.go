package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
)

// BenchmarkFloor is the cost every handler pays at least: decoding the
// typed pod and encoding it again.
func BenchmarkFloor(b *testing.B) {
	raw := peerPod(b)
	b.ReportAllocs()
	for b.Loop() {
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(&pod); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandle is request to response with the patch bytes, as the
// webhook server would write them.
func BenchmarkHandle(b *testing.B) {
	raw := peerPod(b)
	h := &Handler{Injector: testInjector(b)}
	req := request(raw, "prod")
	b.ReportAllocs()
	for b.Loop() {
		resp := h.Handle(context.Background(), req)
		if !resp.Allowed {
			b.Fatal(resp.Result)
		}
		if err := resp.Complete(req); err != nil || len(resp.Patch) == 0 {
			b.Fatal("no patch", err)
		}
	}
}

// BenchmarkServeHTTP adds the AdmissionReview decoding and encoding of the
// HTTP handler (no TLS: that is measured under load elsewhere).
func BenchmarkServeHTTP(b *testing.B) {
	benchmarkServeHTTP(b, NewHTTPHandler(&Handler{Injector: testInjector(b)}))
}

// BenchmarkServeHTTPControllerRuntime is the same request through
// controller-runtime's generic admission.Webhook, the path the webhook
// served before its one-pass server: the baseline for BenchmarkServeHTTP.
func BenchmarkServeHTTPControllerRuntime(b *testing.B) {
	benchmarkServeHTTP(b, referenceHTTPHandler(&Handler{Injector: testInjector(b)}))
}

func benchmarkServeHTTP(b *testing.B, h http.Handler) {
	body := review(b, peerPod(b))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkHandleVsFloor interleaves the floor and the handler in one loop
// and reports their ratio, which holds on a noisy machine where absolute
// times drift between runs.
func BenchmarkHandleVsFloor(b *testing.B) {
	raw := peerPod(b)
	h := &Handler{Injector: testInjector(b)}
	req := request(raw, "prod")
	var floor, handle time.Duration
	for b.Loop() {
		t0 := time.Now()
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(&pod); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		resp := h.Handle(context.Background(), req)
		if err := resp.Complete(req); err != nil || len(resp.Patch) == 0 {
			b.Fatal("no patch", err)
		}
		t2 := time.Now()
		floor += t1.Sub(t0)
		handle += t2.Sub(t1)
	}
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(handle.Nanoseconds())/float64(b.N), "handle-ns/op")
	b.ReportMetric(float64(handle)/float64(floor), "handle/floor")
}

// BenchmarkVerifyVsFloor is the validating endpoint's decision on the pod the
// mutating one produced (named, as the API server sends it), against the
// same decode+encode floor: what /validate-pods adds to every injected pod.
func BenchmarkVerifyVsFloor(b *testing.B) {
	raw := peerPod(b)
	h := &Handler{Injector: testInjector(b)}
	resp := h.Handle(context.Background(), request(raw, "prod"))
	if err := resp.Complete(request(raw, "prod")); err != nil || len(resp.Patch) == 0 {
		b.Fatal("no patch", err)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		b.Fatal(err)
	}
	stored, err := patch.Apply(raw)
	if err != nil {
		b.Fatal(err)
	}
	req := request(stored, "prod")
	v := Verifier{h}
	var floor, verify time.Duration
	for b.Loop() {
		t0 := time.Now()
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(&pod); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if r := v.Handle(context.Background(), req); !r.Allowed {
			b.Fatal(r.Result)
		}
		t2 := time.Now()
		floor += t1.Sub(t0)
		verify += t2.Sub(t1)
	}
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(verify.Nanoseconds())/float64(b.N), "verify-ns/op")
	b.ReportMetric(float64(verify)/float64(floor), "verify/floor")
}
