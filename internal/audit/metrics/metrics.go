// Package metrics holds the audit trail's Prometheus metrics.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the audit trail's counters, gauges and histograms.
type Metrics struct {
	Received      prometheus.Counter
	Stored        prometheus.Counter
	Duplicates    prometheus.Counter
	Rejected      *prometheus.CounterVec // by reason
	Forwarded     *prometheus.CounterVec // by destination, result
	QueueDepth    *prometheus.GaugeVec   // batches queued, by destination
	QueueBytes    *prometheus.GaugeVec   // bytes queued, by destination
	IngestLatency prometheus.Histogram
	// InFlightBytes is the part of the sink's in-flight byte budget
	// that request bodies hold.
	InFlightBytes prometheus.Gauge
}

// New creates the metrics and registers them on reg (when not nil: a nil
// reg gives working, unregistered metrics).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_events_received_total", Help: "Audit events received by the sink (accepted or not).",
		}),
		Stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_events_stored_total", Help: "Audit events newly stored.",
		}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_events_duplicate_total", Help: "Audit events received again (same auditID and stage) and not stored twice.",
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_audit_events_rejected_total", Help: "Audit events (or, for unauthenticated and malformed requests, requests) refused, by reason.",
		}, []string{"reason"}),
		Forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_audit_batches_forwarded_total", Help: "Audit batches sent to forwarding destinations, by destination and result.",
		}, []string{"destination", "result"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_audit_forward_queue_batches", Help: "Audit batches waiting in a destination's on-disk queue.",
		}, []string{"destination"}),
		QueueBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_audit_forward_queue_bytes", Help: "Bytes waiting in a destination's on-disk queue.",
		}, []string{"destination"}),
		IngestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_audit_ingest_seconds",
			Help:    "Time from receiving a webhook batch to answering it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		InFlightBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_audit_inflight_bytes", Help: "Bytes of webhook request bodies the sink holds (read and not yet answered), out of audit.webhook.maxInFlightBytes.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Received, m.Stored, m.Duplicates, m.Rejected, m.Forwarded, m.QueueDepth, m.QueueBytes, m.IngestLatency, m.InFlightBytes)
	}
	return m
}
