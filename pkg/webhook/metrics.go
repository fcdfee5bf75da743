package webhook

import (
	"errors"
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's own series, served next to controller-runtime's
// webhook metrics on the metrics endpoint.
type Metrics struct {
	admissions *prometheus.CounterVec
	causes     *prometheus.CounterVec
	duration   prometheus.Histogram
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_webhook_admissions_total",
			Help: "Pod admission reviews by result: injected, skipped (not opted in or not a pod create), denied (bad annotations, policy, or a csi.cert-manager.io volume not the webhook's own), error, verified (a pod's csi.cert-manager.io volume checked and found the webhook's own).",
		}, []string{"result"}),
		causes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_webhook_denial_causes_total",
			Help: "Causes of refused pods by the field they name (metadata.annotations[mtls.demo/duration], spec.containers[*].securityContext.runAsGroup, ...): which annotations users get wrong.",
		}, []string{"field"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mtls_webhook_mutation_duration_seconds",
			Help:    "Time spent on one admission review, from reading the request body to writing the response.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
	}
	for _, r := range []string{ResultInjected, ResultSkipped, ResultDenied, ResultError, ResultVerified} {
		m.admissions.WithLabelValues(r)
	}
	var err error
	if m.admissions, err = register(reg, m.admissions); err != nil {
		return nil, err
	}
	if m.causes, err = register(reg, m.causes); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the collector already registered under
// its name, so a second webhook in the same process (tests, the demo) shares
// the series instead of failing to start.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *Metrics) observe(result string, d time.Duration) {
	m.admissions.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

// listIndex matches the list indexes of a field path, which the denial
// metric folds into [*] so that its label values stay few.
var listIndex = regexp.MustCompile(`\[[0-9]+\]`)

func (m *Metrics) denied(errs field.ErrorList) {
	for _, e := range errs {
		m.causes.WithLabelValues(listIndex.ReplaceAllString(e.Field, "[*]")).Inc()
	}
}
