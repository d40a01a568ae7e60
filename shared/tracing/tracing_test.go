package tracing_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/tracing"
	"github.com/cloudphone/cloudphone/shared/tracing/otlptest"
)

func newEvent(id, typ string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetType(typ)
	e.SetSource("/test")
	return e
}

func TestTracingIsOffWithoutAnEndpointAndCostsNoSpan(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
	} {
		stop, err := tracing.Setup(context.Background(), config.FromMap(env), "")
		if err != nil {
			t.Fatal(err)
		}
		if tracing.Enabled() {
			t.Errorf("%v: tracing on", env)
		}
		ctx, span := tracing.Start(context.Background(), "x", trace.SpanKindInternal)
		if span.IsRecording() || trace.SpanContextFromContext(ctx).IsValid() {
			t.Errorf("%v: a span was made", env)
		}
		_ = stop(context.Background())
	}
	for _, env := range []map[string]string{
		{"OTEL_TRACES_EXPORTER": "zipkin"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"},
	} {
		if _, err := tracing.Setup(context.Background(), config.FromMap(env), ""); err == nil {
			t.Errorf("%v: accepted", env)
		}
	}
}

// One request makes an event; the relay publishes it, the broker delivers it
// over HTTP, the handler replies: every span is in the request's trace, each
// the child of the one before it, and the reply carries the handler's span.
func TestAnEventCarriesItsTraceThroughEveryHop(t *testing.T) {
	rcv := otlptest.Start(t)
	stop, err := tracing.Setup(context.Background(), config.FromMap(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":    rcv.URL,
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
		"OTEL_EXPORTER_OTLP_HEADERS":     "x-token=secret%20value",
		"OTEL_SERVICE_NAME":              "probe",
	}), "")
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	if !tracing.Enabled() {
		t.Fatal("tracing off with an endpoint")
	}

	// The caller's own trace, sent as a W3C header, is the request's parent.
	incoming := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	ctx, request := tracing.Start(tracing.Extract(context.Background(), incoming), "POST /api/v1/orders", trace.SpanKindServer)
	e := newEvent("e1", "cloudphone.test.thing.happened")
	if !tracing.Stamp(ctx, &e) {
		t.Fatal("no traceparent stamped")
	}
	request.End()

	_, publish := tracing.StartPublish(context.Background(), e) // the relay: no span of its own yet
	tracing.End(publish, nil)
	dctx, deliver := tracing.StartDelivery(context.Background(), e, "billing-purchase-saga")
	h := http.Header{}
	tracing.Inject(dctx, h)
	hctx, handle := tracing.StartEvent(tracing.Extract(context.Background(), h), e, "handle "+e.Type(), trace.SpanKindConsumer)
	reply := newEvent("r1", "cloudphone.test.reply.sent")
	tracing.Stamp(hctx, &reply)
	tracing.EndStatus(handle, 200, "")
	tracing.EndStatus(deliver, 500, "boom")
	_, next := tracing.StartDelivery(context.Background(), reply, "next")
	next.End()
	if err := tracing.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	spans := rcv.Trace("0af7651916cd43dd8448eb211c80319c")
	byName := map[string]otlptest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
		if s.Service != "probe" {
			t.Errorf("%s: service %q", s.Name, s.Service)
		}
	}
	if len(spans) != 5 || len(byName) != 5 {
		t.Fatalf("spans in the trace: %+v", spans)
	}
	parent := map[string]string{
		"POST /api/v1/orders":     "b7ad6b7169203331",
		"publish " + e.Type():     byName["POST /api/v1/orders"].SpanID,
		"deliver " + e.Type():     byName["POST /api/v1/orders"].SpanID,
		"handle " + e.Type():      byName["deliver "+e.Type()].SpanID,
		"deliver " + reply.Type(): byName["handle "+e.Type()].SpanID,
	}
	for name, p := range parent {
		if byName[name].ParentID != p {
			t.Errorf("%s: parent %s, want %s", name, byName[name].ParentID, p)
		}
	}
	if !byName["deliver "+e.Type()].Error || byName["handle "+e.Type()].Error {
		t.Error("the failed delivery (only) is marked failed")
	}
}
