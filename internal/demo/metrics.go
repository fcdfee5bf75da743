package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is what Scrape reads from an app's /metrics.
type Metrics struct {
	Serial            string
	Identity          string
	LeafNotAfter      time.Time
	Reloads           float64
	HandshakeFailures map[string]float64 // by reason
	Requests          map[string]float64 // by outcome
}

// Scrape reads http://ip:port/metrics.
func Scrape(ctx context.Context, ip string, port int) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, strconv.Itoa(port))+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Metrics{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return Metrics{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics reads a demo app's metrics in Prometheus' text format, with
// Prometheus' own parser.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{HandshakeFailures: map[string]float64{}, Requests: map[string]float64{}}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return m, err
	}
	for _, s := range mfs["mtls_cert_info"].GetMetric() {
		if value(s) == 1 {
			m.Serial, m.Identity = label(s, "serial"), label(s, "identity")
		}
	}
	for _, s := range mfs["mtls_cert_not_after_timestamp_seconds"].GetMetric() {
		if label(s, "kind") == "leaf" {
			m.LeafNotAfter = time.Unix(int64(value(s)), 0)
		}
	}
	for _, s := range mfs["mtls_cert_reloads_total"].GetMetric() {
		m.Reloads += value(s)
	}
	for _, s := range mfs["mtls_handshake_failures_total"].GetMetric() {
		m.HandshakeFailures[label(s, "reason")] += value(s)
	}
	for _, s := range mfs["mtls_requests_total"].GetMetric() {
		m.Requests[label(s, "outcome")] += value(s)
	}
	return m, nil
}

func label(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// value is a sample's value, whatever its type.
func value(s *dto.Metric) float64 {
	switch {
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	default:
		return s.GetUntyped().GetValue()
	}
}
