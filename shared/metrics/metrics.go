// Package metrics holds the platform's Prometheus collectors. One Metrics is
// made per process and shared by every function it hosts.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors every function reports to. Safe for
// concurrent use.
type Metrics struct {
	Registry       *prometheus.Registry
	Requests       *prometheus.CounterVec   // function, route, status
	RequestSeconds *prometheus.HistogramVec // function, route
	Deliveries     *prometheus.CounterVec   // function, type, outcome
	RateLimited    *prometheus.CounterVec   // rule
	Degraded       *prometheus.GaugeVec     // component: 1 while running on a fallback
	SagaOutcomes   *prometheus.CounterVec   // saga, outcome
	OutboxEvents   *prometheus.CounterVec   // context, outcome
	EventsRefused  *prometheus.CounterVec   // receiver (broker or a function), reason
}

// New registers the platform's collectors (and the Go and process collectors)
// on a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudphone_http_requests_total", Help: "HTTP requests by function, route and status.",
		}, []string{"function", "route", "status"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cloudphone_http_request_seconds", Help: "HTTP request latency by function and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"function", "route"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudphone_event_deliveries_total", Help: "Events handled by function, type and outcome.",
		}, []string{"function", "type", "outcome"}),
		EventsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudphone_events_refused_total", Help: "Events refused for their sender (no valid token, or not allowed), by receiver and reason.",
		}, []string{"receiver", "reason"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudphone_rate_limit_refusals_total", Help: "Requests refused by the rate limiter, by rule.",
		}, []string{"rule"}),
		Degraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cloudphone_degraded", Help: "1 while a component runs on its fallback (e.g. the limiter without Redis).",
		}, []string{"component"}),
		SagaOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudphone_saga_outcomes_total", Help: "Finished sagas by saga and outcome.",
		}, []string{"saga", "outcome"}),
		OutboxEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudphone_outbox_events_total", Help: "Outbox rows by context and outcome (published, retried, dead).",
		}, []string{"context", "outcome"}),
	}
	r.MustRegister(m.Requests, m.RequestSeconds, m.Deliveries, m.RateLimited, m.Degraded, m.SagaOutcomes, m.OutboxEvents, m.EventsRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
