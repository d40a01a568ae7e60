// Package tracing carries OpenTelemetry traces through the platform: HTTP
// requests, outbox rows, the broker and event functions. A trace context
// travels in the W3C traceparent header on HTTP and in the CloudEvents
// traceparent extension (the distributed tracing extension) on events, so
// everything one request causes, however many events later, is one trace.
//
// Tracing is off unless Setup finds an OTLP endpoint in the standard OTEL_*
// settings; while it is off, Start makes no span and costs a pointer load.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/cloudphone/cloudphone/shared/config"
)

// Extension names of the CloudEvents distributed tracing extension.
const (
	ExtTraceparent = "traceparent"
	ExtTracestate  = "tracestate"
)

// InstrumentationName names the tracer of every span the platform makes.
const InstrumentationName = "github.com/cloudphone/cloudphone"

// DefaultServiceName is the service.name of a process whose OTEL_SERVICE_NAME is unset.
const DefaultServiceName = "cloudphone"

var (
	current    atomic.Pointer[sdktrace.TracerProvider] // nil while tracing is off
	tracer     atomic.Pointer[trace.Tracer]
	propagator = propagation.TraceContext{}
)

// NoSpan records nothing: the span of work done while tracing is off.
var NoSpan trace.Span = noop.Span{}

// Enabled reports whether spans are recorded and exported.
func Enabled() bool { return tracer.Load() != nil }

// Setup turns tracing on when env configures an OTLP/HTTP endpoint
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, used as it is, or
// OTEL_EXPORTER_OTLP_ENDPOINT, to which /v1/traces is added) or sets
// OTEL_TRACES_EXPORTER=otlp (endpoint http://localhost:4318); it stays off
// when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. Spans are sent
// as protobuf (http/protobuf, the only protocol supported) with the headers
// of OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, gzip when
// OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION=gzip, and a timeout of
// OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT milliseconds (10000); the batch
// processor and the sampler read OTEL_BSP_* and OTEL_TRACES_SAMPLER from the
// process environment. service.name is OTEL_SERVICE_NAME, else service, and
// OTEL_RESOURCE_ATTRIBUTES adds to the resource. The returned function flushes and stops
// tracing; it is never nil.
func Setup(ctx context.Context, env config.Source, service string) (shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	get := func(k string) string { v, _ := env.Lookup(k); return strings.TrimSpace(v) }
	exporter := strings.ToLower(get("OTEL_TRACES_EXPORTER"))
	endpoint := get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		if base := get("OTEL_EXPORTER_OTLP_ENDPOINT"); base != "" {
			endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
		}
	}
	switch {
	case strings.EqualFold(get("OTEL_SDK_DISABLED"), "true"), exporter == "none":
		return off, nil
	case exporter != "" && exporter != "otlp":
		return off, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: only otlp (over HTTP) or none is supported", exporter)
	case endpoint == "" && exporter == "":
		return off, nil
	case endpoint == "":
		endpoint = "http://localhost:4318/v1/traces"
	}
	proto := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = get("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return off, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only http/protobuf is supported", proto)
	}
	exp, err := newExporter(endpoint, get)
	if err != nil {
		return off, err
	}
	if s := get("OTEL_SERVICE_NAME"); s != "" {
		service = s
	}
	if service == "" {
		service = DefaultServiceName
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	if fromEnv, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, fromEnv); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := tp.Tracer(InstrumentationName)
	current.Store(tp)
	tracer.Store(&t)
	return func(ctx context.Context) error {
		if current.CompareAndSwap(tp, nil) {
			tracer.Store(nil)
		}
		return tp.Shutdown(ctx)
	}, nil
}

// Start starts a span of kind named name, a child of the span in ctx. While
// tracing is off it returns ctx and a span that records nothing.
func Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	t := tracer.Load()
	if t == nil {
		return ctx, NoSpan
	}
	return (*t).Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// StartEvent starts a span for handling or moving e: a child of the span in
// ctx when there is one (a transport's traceparent, or an in-process
// caller's span), else of the trace context e carries.
func StartEvent(ctx context.Context, e event.Event, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, NoSpan
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = FromEvent(ctx, e)
	}
	attrs = append(attrs, attribute.String("cloudevents.event_id", e.ID()), attribute.String("cloudevents.event_type", e.Type()))
	return Start(ctx, name, kind, attrs...)
}

// StartPublish starts the span of sending e to the broker (the outbox relay's).
func StartPublish(ctx context.Context, e event.Event) (context.Context, trace.Span) {
	return StartEvent(ctx, e, "publish "+e.Type(), trace.SpanKindProducer)
}

// StartDelivery starts the span of the broker's delivering e to subscriber.
func StartDelivery(ctx context.Context, e event.Event, subscriber string) (context.Context, trace.Span) {
	return StartEvent(ctx, e, "deliver "+e.Type(), trace.SpanKindProducer, attribute.String("messaging.destination.name", subscriber))
}

// EndStatus ends span with the HTTP status of what it did, failed unless
// status is 2xx (why says why).
func EndStatus(span trace.Span, status int, why string) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status/100 != 2 {
		span.SetStatus(codes.Error, why)
	}
	span.End()
}

// FromEvent returns ctx carrying the trace context of e's traceparent
// extension as the remote parent, or ctx when e carries none.
func FromEvent(ctx context.Context, e event.Event) context.Context {
	tp, _ := e.Extensions()[ExtTraceparent].(string)
	if tp == "" {
		return ctx
	}
	c := propagation.MapCarrier{ExtTraceparent: tp}
	if ts, _ := e.Extensions()[ExtTracestate].(string); ts != "" {
		c[ExtTracestate] = ts
	}
	return propagator.Extract(ctx, c)
}

// Stamp sets e's traceparent (and tracestate) extension to the span context
// in ctx; it reports false, and leaves e alone, when ctx has none.
func Stamp(ctx context.Context, e *event.Event) bool {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return false
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	e.SetExtension(ExtTraceparent, c[ExtTraceparent])
	if ts := c[ExtTracestate]; ts != "" {
		e.SetExtension(ExtTracestate, ts)
	}
	return true
}

// Extract returns ctx carrying the trace context of the W3C traceparent
// header in h as the remote parent (ctx itself when h has none, or while
// tracing is off).
func Extract(ctx context.Context, h http.Header) context.Context {
	if !Enabled() || h.Get(ExtTraceparent) == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes the span context in ctx to h as the W3C traceparent header.
func Inject(ctx context.Context, h http.Header) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ErrOff is what ForceFlush returns while tracing is off.
var ErrOff = errors.New("tracing is off")

// ForceFlush exports the spans ended so far.
func ForceFlush(ctx context.Context) error {
	tp := current.Load()
	if tp == nil {
		return ErrOff
	}
	return tp.ForceFlush(ctx)
}

// newExporter makes the OTLP/HTTP exporter for endpoint from the
// OTEL_EXPORTER_OTLP_* settings get returns.
func newExporter(endpoint string, get func(string) string) (*otlpExporter, error) {
	setting := func(name string) string {
		if v := get("OTEL_EXPORTER_OTLP_TRACES_" + name); v != "" {
			return v
		}
		return get("OTEL_EXPORTER_OTLP_" + name)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q is not an http(s) URL", endpoint)
	}
	x := &otlpExporter{url: endpoint, headers: map[string]string{}, client: &http.Client{Timeout: 10 * time.Second}}
	if v := setting("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT=%s: not a positive number of milliseconds", v)
		}
		x.client.Timeout = time.Duration(ms) * time.Millisecond
	}
	switch c := setting("COMPRESSION"); c {
	case "", "none":
	case "gzip":
		x.gzip = true
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION=%s: only gzip or none", c)
	}
	if h := setting("HEADERS"); h != "" {
		for _, kv := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %q is not key=value", kv)
			}
			if dec, err := url.QueryUnescape(strings.TrimSpace(v)); err == nil {
				v = dec
			}
			x.headers[k] = v
		}
	}
	return x, nil
}
