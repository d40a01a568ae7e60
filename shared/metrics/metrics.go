// Package metrics holds the platform's Prometheus collectors. One Metrics is
// made per process and shared by every function it hosts.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

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

	// Phones.
	PhoneCreateToRunning prometheus.Histogram // seconds from a phone's creation to its first running
	PhoneCrashes         prometheus.Counter   // crashes a device host found
	PhoneRecreations     prometheus.Counter   // containers a device host recreated after a crash
	// SagaStepSeconds is how long a saga stayed at a step, by saga, step and
	// how the step ended (done, failed).
	SagaStepSeconds *prometheus.HistogramVec
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
		PhoneCreateToRunning: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cloudphone_phone_create_to_running_seconds", Help: "Time from a phone's creation to its first running state.",
			Buckets: []float64{.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
		}),
		PhoneCrashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cloudphone_phone_crashes_total", Help: "Phone crashes found by the device hosts (a container that exited or stopped answering ADB).",
		}),
		PhoneRecreations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cloudphone_phone_recreations_total", Help: "Phone containers recreated by the device hosts after a crash.",
		}),
		SagaStepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cloudphone_saga_step_seconds", Help: "Time a saga spent at a step (from the step's start to its end), by saga, step and outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"saga", "step", "outcome"}),
	}
	r.MustRegister(m.Requests, m.RequestSeconds, m.Deliveries, m.RateLimited, m.Degraded, m.SagaOutcomes, m.OutboxEvents, m.EventsRefused,
		m.PhoneCreateToRunning, m.PhoneCrashes, m.PhoneRecreations, m.SagaStepSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Sample is one value of a gauge read at scrape time, with its label values.
type Sample struct {
	Labels []string
	Value  float64
}

// ScrapeTimeout bounds one read of the gauges made by Gauges.
const ScrapeTimeout = 3 * time.Second

// Gauges registers gauges whose values are read at every scrape by read
// (from the database, say), so they are right from a process's first
// scrape, restarts included. read returns the samples of each gauge in the
// order of names; a failed read is logged and reports nothing that scrape.
func (m *Metrics) Gauges(log *slog.Logger, read func(context.Context) ([][]Sample, error), gauges ...GaugeDesc) error {
	c := &scrapeCollector{read: read, log: log}
	for _, g := range gauges {
		c.descs = append(c.descs, prometheus.NewDesc(g.Name, g.Help, g.Labels, nil))
	}
	return m.Registry.Register(c)
}

// GaugeDesc names and describes one gauge of Gauges.
type GaugeDesc struct {
	Name, Help string
	Labels     []string
}

type scrapeCollector struct {
	descs []*prometheus.Desc
	read  func(context.Context) ([][]Sample, error)
	log   *slog.Logger
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	got, err := c.read(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("metrics not read", "metrics", c.descs[0].String(), "err", err)
		}
		return
	}
	for i, samples := range got {
		if i >= len(c.descs) {
			break
		}
		for _, s := range samples {
			mt, err := prometheus.NewConstMetric(c.descs[i], prometheus.GaugeValue, s.Value, s.Labels...)
			if err != nil {
				mt = prometheus.NewInvalidMetric(c.descs[i], err)
			}
			ch <- mt
		}
	}
}
