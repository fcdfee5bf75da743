// Package load measures the real mtls-webhook binary over HTTPS under
// concurrent load: latency percentiles at a fixed request rate, the highest
// rate it holds without errors, and its resident memory. The measurement is
// BenchmarkWebhookLoad (load_test.go), which only runs with -bench, so
// `make test` never starts it; `make bench` does, through hack/benchreport.
//
// This file is the load generator: an open-loop, fixed-rate pacer (like
// vegeta's constant pacer) feeding a pool of workers that share keep-alive
// HTTPS connections. Request i is due at start + i/rate whatever happened to
// the previous ones, so a slow server gets more concurrent requests, not
// fewer, and its slowness shows up in the percentiles.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/stats"
)

// Target is one endpoint under load and how to judge its answers.
type Target struct {
	Client *http.Client
	URL    string
	Body   []byte
	// Check returns an error for a wrong answer; it counts as an error.
	Check func(status int, body []byte) error
}

// Result is one attack at a fixed rate.
type Result struct {
	Rate      int             // requests per second asked for
	Sent      int             // requests sent
	Errors    int             // transport errors, timeouts and wrong answers
	FirstErr  error           // the first of them
	Latencies []time.Duration // successful requests only
	Elapsed   time.Duration   // from the first due time to the last send
}

// Achieved is the rate the pacer actually held while sending.
func (r Result) Achieved() float64 {
	if r.Elapsed <= 0 || r.Sent < 2 {
		return float64(r.Sent)
	}
	// Sent-1 intervals between the first and the last send.
	return float64(r.Sent-1) / r.Elapsed.Seconds()
}

// Percentile is the nearest-rank percentile of the successful latencies.
func (r Result) Percentile(p int) time.Duration { return stats.Percentile(r.Latencies, p) }

// Held says whether the attack kept its rate (within 5%) with no errors;
// why not, otherwise.
func (r Result) Held() (bool, string) {
	switch {
	case r.Errors > 0:
		return false, fmt.Sprintf("%d errors, first: %v", r.Errors, r.FirstErr)
	case r.Achieved() < 0.95*float64(r.Rate):
		return false, fmt.Sprintf("rate not held: %.0f/s sent of %d/s", r.Achieved(), r.Rate)
	}
	return true, ""
}

// maxWorkers bounds the concurrent requests (and so connections).
const maxWorkers = 512

// Attack sends rate requests per second for d and waits for every answer.
func Attack(ctx context.Context, t Target, rate int, d time.Duration) Result {
	total := int(int64(rate) * int64(d) / int64(time.Second))
	interval := time.Second / time.Duration(rate)
	ticks := make(chan struct{})
	var (
		mu  sync.Mutex
		res = Result{Rate: rate, Latencies: make([]time.Duration, 0, total)}
		wg  sync.WaitGroup
	)
	worker := func() {
		defer wg.Done()
		var lat []time.Duration
		var errs int
		var first error
		for range ticks {
			start := time.Now()
			err := t.do(ctx)
			if err != nil {
				errs++
				if first == nil {
					first = err
				}
				continue
			}
			lat = append(lat, time.Since(start))
		}
		mu.Lock()
		res.Latencies = append(res.Latencies, lat...)
		res.Errors += errs
		if res.FirstErr == nil {
			res.FirstErr = first
		}
		mu.Unlock()
	}
	workers := 0
	spawn := func() { workers++; wg.Add(1); go worker() }
	for range 8 {
		spawn()
	}
	begin := time.Now()
	var last time.Time
	for i := range total {
		if ctx.Err() != nil {
			break
		}
		if wait := time.Until(begin.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case ticks <- struct{}{}:
		default:
			// Every worker is busy: add one rather than wait, so the
			// rate does not drop to what the server answers.
			if workers < maxWorkers {
				spawn()
			}
			ticks <- struct{}{}
		}
		last = time.Now()
		res.Sent++
	}
	close(ticks)
	wg.Wait()
	res.Elapsed = last.Sub(begin)
	return res
}

func (t Target) do(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if t.Check != nil {
		return t.Check(resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
