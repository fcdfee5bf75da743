// Package check is `mtls-webhook check`: it asks a running cluster whether
// everything an opted-in pod depends on is in place, in the spirit of
// `linkerd check` and cert-manager's startupapicheck. Each check reports a
// status (ok, warn, fail) and a message that names the object at fault and
// what to do about it.
//
// A check that fails is retried until the deadline, because a fresh install
// legitimately needs a few seconds (the caBundle is injected, the webhook's
// pods become Ready, a new namespace gets its default ServiceAccount). The
// checks run side by side, so the whole run takes at most the timeout.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Status is the outcome of one check.
type Status string

// The statuses, from best to worst.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Names of the checks, in the order they are reported.
const (
	CertManagerAPI = "cert-manager-api"
	CSIDriver      = "csi-driver"
	WebhookConfig  = "webhook-config"
	WebhookTLS     = "webhook-tls"
	WebhookPods    = "webhook-pods"
	WebhookInjects = "webhook-injects"
	Issuers        = "issuers"
	BypassedPods   = "bypassed-pods"
)

// Result is the outcome of one check.
type Result struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
}

// Report is the outcome of a run.
type Report struct {
	// Namespace and Name locate the release checked: the webhook's
	// namespace and the chart's full name.
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Checks    []Result `json:"checks"`
	// OK is false when any check failed; warnings do not count.
	OK bool `json:"ok"`
}

// Failed returns the names of the checks that failed.
func (r Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c.Name)
		}
	}
	return out
}

// Get returns the result of the named check.
func (r Report) Get(name string) (Result, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Result{}, false
}

// Options say what to check.
type Options struct {
	// Namespace is the release namespace, where the webhook runs.
	Namespace string
	// Name is the chart's full name (the helper mtls-webhook.fullname):
	// the MutatingWebhookConfiguration, Deployment and Service are named
	// after it, the serving Secret is <Name>-tls.
	Name string
	// CanaryNamespace is where the canary pod and Certificate are created
	// with a server-side dry run; it must not be excluded from injection.
	CanaryNamespace string
	// CanaryIssuer is the canary pod's mtls.demo/issuer (empty: none, the
	// webhook's default issuer applies).
	CanaryIssuer string
	// RequiredIssuers must exist and be Ready, in addition to the webhook's
	// default issuer and the exact names in its allowed issuers.
	RequiredIssuers []IssuerRef
	// WebhookFlags, when not nil, replace the issuer flags read from the
	// webhook Deployment's container args (--default-issuer and friends,
	// --allowed-issuers).
	WebhookFlags map[string]string
	// Timeout bounds the whole run, retries included.
	Timeout time.Duration
	// Interval is the pause between retries of a failing check (default 2s).
	Interval time.Duration
	// Progress, when not nil, gets one line per check that is still
	// failing and will be retried.
	Progress io.Writer
	// Dial opens the TLS check's TCP connections (default: net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Checker runs the checks against one cluster.
type Checker struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Options
}

type checkFunc func(ctx context.Context) Result

// Run runs every check, retrying failures until the timeout, and returns
// the report. It never returns an error: a check that cannot reach what it
// needs fails with the reason.
func (c *Checker) Run(ctx context.Context) Report {
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()

	checks := []struct {
		name string
		fn   checkFunc
	}{
		{CertManagerAPI, c.certManagerAPI},
		{CSIDriver, c.csiDriver},
		{WebhookConfig, c.webhookConfig},
		{WebhookTLS, c.webhookTLS},
		{WebhookPods, c.webhookPods},
		{WebhookInjects, c.webhookInjects},
		{Issuers, c.issuers},
		{BypassedPods, c.bypassedPods},
	}
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	var progressMu sync.Mutex
	for i, chk := range checks {
		wg.Go(func() {
			results[i] = c.retry(ctx, chk.name, chk.fn, &progressMu)
		})
	}
	wg.Wait()

	rep := Report{Namespace: c.Namespace, Name: c.Name, Checks: results, OK: true}
	for _, r := range results {
		if r.Status == Fail {
			rep.OK = false
		}
	}
	return rep
}

// retry runs fn until it does not fail or ctx is done, and returns its
// last result.
func (c *Checker) retry(ctx context.Context, name string, fn checkFunc, mu *sync.Mutex) Result {
	announced := false
	for {
		// Each attempt gets its own bound, so one hung request cannot eat
		// the retries of the whole run.
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		r := fn(actx)
		cancel()
		r.Name = name
		if r.Status != Fail {
			return r
		}
		deadline, _ := ctx.Deadline()
		if ctx.Err() != nil || time.Until(deadline) < c.Interval {
			return r
		}
		if c.Progress != nil && !announced {
			mu.Lock()
			fmt.Fprintf(c.Progress, "check: %s: %s (retrying until %s)\n", name, r.Message, deadline.Format(time.TimeOnly))
			mu.Unlock()
			announced = true
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(c.Interval):
		}
	}
}

func ok(format string, args ...any) Result {
	return Result{Status: OK, Message: fmt.Sprintf(format, args...)}
}

func warn(format string, args ...any) Result {
	return Result{Status: Warn, Message: fmt.Sprintf(format, args...)}
}

func fail(format string, args ...any) Result {
	return Result{Status: Fail, Message: fmt.Sprintf(format, args...)}
}

// Format is how a report is printed.
type Format string

// The output formats of -o.
const (
	Table Format = "table"
	JSON  Format = "json"
)

// ParseFormat validates -o.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Table, JSON:
		return f, nil
	}
	return "", fmt.Errorf("-o=%q: must be table or json", s)
}

// Write prints the report in the format.
func (r Report) Write(w io.Writer, f Format) error {
	if f == JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tMESSAGE")
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		// Keep the table one row per check whatever the message holds.
		msg := strings.Join(strings.Fields(c.Message), " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Status, msg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "PASS"
	if !r.OK {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "\n%s: mtls-webhook %s/%s: %d ok, %d warning(s), %d failed\n",
		verdict, r.Namespace, r.Name, counts[OK], counts[Warn], counts[Fail])
	return err
}
