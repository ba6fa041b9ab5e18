package issuer

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the issuer's Prometheus metrics.
type Metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	loginsFailed *prometheus.CounterVec
	refreshReuse prometheus.Counter
	replays      *prometheus.CounterVec
	tokenWaiting prometheus.Gauge
}

// NewMetrics creates and registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gatehouse_http_request_duration_seconds", Help: "HTTP request latency by endpoint.",
			// Sub-millisecond buckets: most endpoints answer in well under 1 ms.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"endpoint"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_tokens_issued_total", Help: "Token responses issued by grant type.",
		}, []string{"grant_type"}),
		loginsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_logins_failed_total", Help: "Failed logins by reason.",
		}, []string{"reason"}),
		refreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_refresh_reuse_total", Help: "Refresh tokens presented again inside the reuse interval.",
		}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_token_replays_total", Help: "Replayed authorization codes and refresh tokens (what they issued was revoked).",
		}, []string{"kind"}),
		tokenWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_token_requests_waiting", Help: "Token requests waiting for a slot (see the issuer's token concurrency).",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.tokens, m.loginsFailed, m.refreshReuse, m.replays, m.tokenWaiting} {
		if err := reg.Register(c); err != nil {
			slog.Default().Warn("metric already registered", "err", err)
		}
	}
	return m
}
