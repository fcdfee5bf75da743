package stats

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond
	}
	for p, want := range map[int]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%d = %s, want %s", p, got, want)
		}
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one = %s, want 7ns", got)
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of none = %s, want 0", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("Percentile sorted its input in place")
	}
}
