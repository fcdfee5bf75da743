package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
)

// ClientOptions configures the load client. TLS holds the same certificate
// settings as the servers (MTLS_* files, USE_MTLS, CERT_RELOAD).
type ClientOptions struct {
	// URL is the frontend base URL (FRONTEND_URL or -url); /submit is added.
	URL string
	// Count is how many requests to send; 0 sends until ctx ends.
	Count int
	// Interval paces request starts; 0 sends as fast as the workers allow.
	Interval time.Duration
	// Concurrency is the number of requests in flight at most.
	Concurrency int
	// Timeout bounds each request.
	Timeout time.Duration
	// Quiet suppresses the per-request lines, keeping the summary.
	Quiet bool
	TLS   Options
	// OnResult, if set, sees every answer; tests use it to collect serials.
	OnResult func(Result)
}

// Result is the outcome of one numbered request.
type Result struct {
	ID       string
	Status   int
	Answer   *FrontendAnswer
	Err      error
	Duration time.Duration
}

// Summary totals a run.
type Summary struct {
	Sent, OK, Failed int
	Elapsed          time.Duration
	Latencies        []time.Duration
	Failures         map[string]int
}

// LoadClient sends numbered requests to the frontend.
type LoadClient struct {
	opts     ClientOptions
	target   *url.URL
	source   *certs.Source
	upstream *upstream
	metrics  *Metrics
	log      *slog.Logger
	sent     atomic.Int64
}

// NewLoadClient validates opts and, in mTLS mode, loads the client
// certificate; like the servers it refuses to start without one.
func NewLoadClient(opts ClientOptions, log *slog.Logger) (*LoadClient, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("app", "client")
	opts.TLS.Role = RoleClient
	if err := opts.TLS.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	var errs []error
	if opts.Count < 0 {
		errs = append(errs, fmt.Errorf("-count=%d: want 0 (until interrupted) or more", opts.Count))
	}
	if opts.Interval < 0 {
		errs = append(errs, fmt.Errorf("-interval=%s: want 0 or a positive duration", opts.Interval))
	}
	if opts.Concurrency < 1 || opts.Concurrency > 1024 {
		errs = append(errs, fmt.Errorf("-concurrency=%d: want 1-1024", opts.Concurrency))
	}
	if opts.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout=%s: want a positive duration", opts.Timeout))
	}
	u, err := url.Parse(opts.URL)
	switch {
	case err != nil || u.Hostname() == "":
		errs = append(errs, fmt.Errorf("%s=%q: want an absolute URL such as https://frontend-svc:8080", EnvFrontendURL, opts.URL))
	case u.Scheme == "http" && opts.TLS.UseMTLS:
		u.Scheme = "https"
	case u.Scheme == "https" && !opts.TLS.UseMTLS:
		errs = append(errs, fmt.Errorf("%s=%q: https needs %s=true", EnvFrontendURL, opts.URL, EnvUseMTLS))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("%s=%q: want http or https", EnvFrontendURL, opts.URL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	c := &LoadClient{opts: opts, target: u.JoinPath("submit"), metrics: NewMetrics("client"), log: log}
	if opts.TLS.UseMTLS {
		src, err := openSource(opts.TLS, c.metrics, log)
		if err != nil {
			return nil, err
		}
		c.source = src
		cfg, err := src.ClientConfig(u.Hostname())
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvFrontendURL, opts.URL, err)
		}
		c.upstream = newUpstream(cfg, opts.Timeout, src)
	} else {
		c.upstream = newUpstream(nil, opts.Timeout, nil)
	}
	return c, nil
}

// Metrics exposes the client's registry.
func (c *LoadClient) Metrics() *Metrics { return c.metrics }

// Source is the client's certificate source, nil in plain mode.
func (c *LoadClient) Source() *certs.Source { return c.source }

// Sent is the number of requests started so far.
func (c *LoadClient) Sent() int { return int(c.sent.Load()) }

// Run sends the requests, prints one line per result to out (unless Quiet)
// and returns the totals. Ending ctx stops new requests; those in flight
// finish.
func (c *LoadClient) Run(ctx context.Context, out io.Writer) Summary {
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	if c.source != nil {
		go func() { _ = c.source.Run(watchCtx) }()
	}
	ids := make(chan int)
	go func() {
		defer close(ids)
		var tick <-chan time.Time
		if c.opts.Interval > 0 {
			t := time.NewTicker(c.opts.Interval)
			defer t.Stop()
			tick = t.C
		}
		for n := 1; c.opts.Count == 0 || n <= c.opts.Count; n++ {
			if n > 1 && tick != nil {
				select {
				case <-ctx.Done():
					return
				case <-tick:
				}
			}
			select {
			case <-ctx.Done():
				return
			case ids <- n:
			}
		}
	}()
	var (
		mu  sync.Mutex
		sum = Summary{Failures: map[string]int{}}
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range c.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range ids {
				c.sent.Add(1)
				res := c.send(context.WithoutCancel(ctx), strconv.Itoa(n))
				if c.opts.OnResult != nil {
					c.opts.OnResult(res)
				}
				mu.Lock()
				sum.Sent++
				sum.Latencies = append(sum.Latencies, res.Duration)
				if res.Err == nil && res.Status == http.StatusOK {
					sum.OK++
				} else {
					sum.Failed++
					sum.Failures[failureKey(res)]++
				}
				if !c.opts.Quiet {
					fmt.Fprintln(out, formatResult(res))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sum.Elapsed = time.Since(start)
	c.upstream.close()
	fmt.Fprintln(out, sum.String())
	return sum
}

func (c *LoadClient) send(ctx context.Context, id string) Result {
	start := time.Now()
	res := Result{ID: id}
	payload, _ := json.Marshal(map[string]string{"request_id": id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.target.String(), bytes.NewReader(payload))
	if err != nil {
		res.Err = fmt.Errorf("build request: %w", err)
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	resp, err := c.upstream.client().Do(req)
	if err != nil {
		res.Err = err
		res.Duration = time.Since(start)
		c.metrics.Request("client", "transport_error")
		c.log.Warn("request failed", "request_id", id, "error", err.Error())
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	res.Status = resp.StatusCode
	res.Duration = time.Since(start)
	if err != nil {
		res.Err = fmt.Errorf("read answer: %w", err)
	}
	var ans FrontendAnswer
	if json.Unmarshal(body, &ans) == nil {
		res.Answer = &ans
	}
	if res.Err == nil && res.Status == http.StatusOK {
		c.metrics.Request("client", "ok")
	} else {
		c.metrics.Request("client", "http_error")
	}
	return res
}

func failureKey(r Result) string {
	if r.Err != nil {
		var ne net.Error
		if errors.As(r.Err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "transport: " + r.Err.Error()
	}
	return "status " + strconv.Itoa(r.Status)
}

func formatResult(r Result) string {
	if r.Err != nil {
		return fmt.Sprintf("#%s FAILED after %s: %v", r.ID, r.Duration.Round(time.Microsecond), r.Err)
	}
	line := fmt.Sprintf("#%s %d %s", r.ID, r.Status, r.Duration.Round(time.Microsecond))
	if a := r.Answer; a != nil {
		line += fmt.Sprintf(" | frontend%s saw caller %s", serialTag(a.ServerSerial), orPlain(a.Caller))
		var b BackendAnswer
		if json.Unmarshal(a.Backend, &b) == nil && b.Service != "" {
			line += fmt.Sprintf(" | backend%s saw caller %s%s %s | %s",
				serialTag(b.ServerSerial), orPlain(b.Caller), serialTag(b.CallerSerial), b.TLSVersion, b.Message)
		}
		if a.Error != "" {
			line += " error: " + a.Error
		}
	}
	return line
}

func serialTag(serial string) string {
	if serial == "" {
		return ""
	}
	return "[serial " + serial + "]"
}

func orPlain(identity string) string {
	if identity == "" {
		return "(none, plain HTTP)"
	}
	return identity
}

// Percentile returns the p-th percentile (0-100) of the latencies.
func (s Summary) Percentile(p float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.Latencies)
	slices.Sort(l)
	i := int(float64(len(l)-1) * p / 100)
	return l[i]
}

// String is the closing summary line.
func (s Summary) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Sent) / s.Elapsed.Seconds()
	}
	out := fmt.Sprintf("summary: sent=%d ok=%d failed=%d elapsed=%s rate=%.1f/s p50=%s p99=%s",
		s.Sent, s.OK, s.Failed, s.Elapsed.Round(time.Millisecond), rate,
		s.Percentile(50).Round(time.Microsecond), s.Percentile(99).Round(time.Microsecond))
	keys := make([]string, 0, len(s.Failures))
	for k := range s.Failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out += fmt.Sprintf("\n  failed %dx: %s", s.Failures[k], k)
	}
	return out
}

// RunClient is the client binary: flags (defaulting from the environment),
// an optional ops listener, the run and its summary. It returns the process
// exit code: 0 when every request succeeded, 1 when some failed, 2 for a
// configuration error.
func RunClient(ctx context.Context, version string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	log := NewLogger(stderr, version)
	tlsOpts, err := FromEnv(RoleClient, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "client: configuration: %v\n", err)
		return 2
	}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defURL := getenv(EnvFrontendURL)
	if defURL == "" {
		defURL = "https://frontend-svc:8080"
	}
	o := ClientOptions{TLS: tlsOpts}
	fs.StringVar(&o.URL, "url", defURL, "frontend base URL (env "+EnvFrontendURL+")")
	fs.IntVar(&o.Count, "count", 10, "requests to send; 0 = until interrupted")
	fs.DurationVar(&o.Interval, "interval", time.Second, "time between request starts; 0 = as fast as possible")
	fs.IntVar(&o.Concurrency, "concurrency", 1, "requests in flight at most")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.BoolVar(&o.Quiet, "quiet", false, "print only the summary")
	opsAddr := fs.String("ops-addr", "", "serve /healthz and /metrics in plain HTTP on this address (e.g. 127.0.0.1:9092)")
	waitFor := fs.Duration("wait-for-frontend", 0, "before the first request, wait up to this long until the frontend accepts TCP connections (a NetworkPolicy agent may admit a new pod's address a moment after it starts); 0 = do not wait")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := NewLoadClient(o, log)
	if err != nil {
		fmt.Fprintf(stderr, "client: %v\n", err)
		return 2
	}
	if *waitFor > 0 {
		took, err := waitForTCP(ctx, c.target, *waitFor)
		if err != nil {
			fmt.Fprintf(stderr, "client: -wait-for-frontend=%s: %v\n", *waitFor, err)
			return 1
		}
		log.Info("frontend reachable", "after", took.String())
	}
	if *opsAddr != "" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *opsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "client: -ops-addr=%q: %v\n", *opsAddr, err)
			return 2
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "app": "client", "sent": c.Sent()})
		})
		mux.Handle("GET /metrics", c.metrics.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	sum := c.Run(ctx, stdout)
	if sum.Failed > 0 || sum.Sent == 0 {
		return 1
	}
	return 0
}

// waitForTCP dials the URL's host and port until a connection opens or
// limit passes, and returns how long that took.
func waitForTCP(ctx context.Context, u *url.URL, limit time.Duration) (time.Duration, error) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			return time.Since(t0), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(t0), fmt.Errorf("%s not reachable after %s: %w", addr, time.Since(t0).Round(time.Millisecond), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
