package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

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
	h := NewHTTPHandler(&Handler{Injector: testInjector(b)})
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
