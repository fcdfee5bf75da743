package webhook

import (
	"errors"
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
			Help: "Admission reviews by the kind of object (Pod on " + Path + " and " + VerifyPath + "; Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob on " + WorkloadPath + ", or unknown when the review could not be read) and result: injected (a pod patched), allowed (a workload whose pod template passes), skipped (not opted in, a template left unchanged, or not a request the endpoint acts on), denied (bad annotations, policy, or a csi.cert-manager.io volume not the webhook's own), error, verified (a pod's csi.cert-manager.io volume checked and found the webhook's own).",
		}, []string{"kind", "result"}),
		causes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_webhook_denial_causes_total",
			Help: "Causes of refused pods by the field they name (metadata.annotations[mtls.demo/duration], spec.containers[*].securityContext.runAsGroup, ...): which annotations users get wrong. List indexes and map keys other than the webhook's own annotations and volume attributes are [*]; other is a path of an unforeseen shape.",
		}, []string{"field"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mtls_webhook_mutation_duration_seconds",
			Help:    "Time spent on one admission review, from reading the request body to writing the response.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
	}
	for _, r := range []string{ResultInjected, ResultSkipped, ResultDenied, ResultError, ResultVerified} {
		m.admissions.WithLabelValues(KindPod, r)
	}
	for _, k := range workloadKinds {
		for _, r := range []string{ResultAllowed, ResultSkipped, ResultDenied, ResultError} {
			m.admissions.WithLabelValues(k, r)
		}
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

func (m *Metrics) observe(kind, result string, d time.Duration) {
	m.admissions.WithLabelValues(kind, result).Inc()
	m.duration.Observe(d.Seconds())
}

// denied counts each cause under a label from a fixed set (causeLabel):
// never the request's own keys, so the series cannot grow with requests.
func (m *Metrics) denied(errs field.ErrorList) {
	for _, e := range errs {
		m.causes.WithLabelValues(causeLabel(e.Field)).Inc()
	}
}
