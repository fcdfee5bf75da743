package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttackHoldsRate checks the pacer sends what it was asked, counts
// wrong answers as errors and keeps the rate when the server is slower
// than the interval (open loop: more workers, not fewer requests).
func TestAttackHoldsRate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%50 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		time.Sleep(20 * time.Millisecond) // 10x the 2 ms interval
	}))
	defer srv.Close()
	r := Attack(context.Background(), Target{Client: srv.Client(), URL: srv.URL, Body: []byte("{}")}, 500, time.Second)
	if r.Sent != 500 {
		t.Errorf("sent %d, want 500", r.Sent)
	}
	if r.Errors != 10 {
		t.Errorf("errors %d, want 10 (every 50th answer is a 500)", r.Errors)
	}
	if len(r.Latencies) != 490 {
		t.Errorf("%d latencies, want 490", len(r.Latencies))
	}
	if p50 := r.Percentile(50); p50 < 20*time.Millisecond {
		t.Errorf("p50 %s below the server's 20 ms", p50)
	}
	if a := r.Achieved(); a < 450 || a > 550 {
		t.Errorf("achieved %.0f/s, want about 500", a)
	}
	if ok, _ := r.Held(); ok {
		t.Error("Held with errors")
	}
}
