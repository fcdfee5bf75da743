package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's own series, served next to controller-runtime's
// webhook metrics on the metrics endpoint.
type Metrics struct {
	admissions *prometheus.CounterVec
	duration   prometheus.Histogram
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_webhook_admissions_total",
			Help: "Pod admission reviews by result: injected, skipped (not opted in or not a pod create), denied (bad annotations or policy), error.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mtls_webhook_mutation_duration_seconds",
			Help:    "Time spent handling one admission review, from decoded request to response.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
	}
	for _, r := range []string{ResultInjected, ResultSkipped, ResultDenied, ResultError} {
		m.admissions.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.admissions, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(result string, d time.Duration) {
	m.admissions.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}
