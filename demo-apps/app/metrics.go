package app

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
)

// Metrics is one process's Prometheus registry. Each app (and each test)
// owns its own registry instead of the global default, so two servers in one
// test process never share counters.
type Metrics struct {
	Registry *prometheus.Registry

	certNotAfter      *prometheus.GaugeVec
	certSerialInfo    *prometheus.GaugeVec
	reloads           prometheus.Counter
	reloadErrors      *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	requests          *prometheus.CounterVec
}

// NewMetrics registers the demo's metrics plus the Go runtime collectors.
func NewMetrics(app string) *Metrics {
	constLabels := prometheus.Labels{"app": app}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		certNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mtls_cert_not_after_timestamp_seconds", ConstLabels: constLabels,
			Help: "Expiry (Unix seconds) of the certificate in service: kind=leaf, or kind=ca for the earliest-expiring trusted CA.",
		}, []string{"kind"}),
		certSerialInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mtls_cert_info", ConstLabels: constLabels,
			Help: "Always 1; labels carry the serial and identity of the certificate in service.",
		}, []string{"serial", "identity"}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mtls_cert_reloads_total", ConstLabels: constLabels,
			Help: "Certificate sets put into service after start-up.",
		}),
		reloadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_cert_reload_errors_total", ConstLabels: constLabels,
			Help: "Changed certificate sets refused (the previous set stayed in service), by reason.",
		}, []string{"reason"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_handshake_failures_total", ConstLabels: constLabels,
			Help: "TLS peers refused during the handshake, by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_requests_total", ConstLabels: constLabels,
			Help: "Requests handled (servers) or sent (client), by handler and outcome.",
		}, []string{"handler", "outcome"}),
	}
	m.Registry.MustRegister(m.certNotAfter, m.certSerialInfo, m.reloads, m.reloadErrors,
		m.handshakeFailures, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Loaded implements certs.Observer.
func (m *Metrics) Loaded(b *certs.Bundle, initial bool) {
	m.certNotAfter.WithLabelValues("leaf").Set(float64(b.Leaf.NotAfter.Unix()))
	m.certNotAfter.WithLabelValues("ca").Set(float64(b.CANotAfter().Unix()))
	m.certSerialInfo.Reset()
	m.certSerialInfo.WithLabelValues(b.Serial, certs.Identity(b.Leaf)).Set(1)
	if !initial {
		m.reloads.Inc()
	}
}

// ReloadFailed implements certs.Observer.
func (m *Metrics) ReloadFailed(reason string) { m.reloadErrors.WithLabelValues(reason).Inc() }

// HandshakeFailed implements certs.Observer.
func (m *Metrics) HandshakeFailed(reason string) { m.handshakeFailures.WithLabelValues(reason).Inc() }

// Request counts one request by handler and outcome.
func (m *Metrics) Request(handler, outcome string) {
	m.requests.WithLabelValues(handler, outcome).Inc()
}
