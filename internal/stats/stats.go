// Package stats holds the latency statistics the benchmarks report, so the
// load test and the API-server benchmark compute them the same way.
package stats

import (
	"slices"
	"time"
)

// Percentile is the nearest-rank p-th percentile of ds (0 for no samples).
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	return s[max(i, 0)]
}
