package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/tracing"
	"github.com/cloudphone/cloudphone/shared/tracing/otlptest"
)

// One purchase is one trace: the caller's traceparent on POST /api/v1/orders
// is the parent of the request's span, and every hop after it (the outbox
// relay's publish, the broker's delivery, the event function's handling, and
// the events each handler writes in turn) is a span of the same trace whose
// parent is a span of that trace, exported over OTLP/HTTP to a receiver.
func TestOnePurchaseIsOneTraceAcrossEverySagaHop(t *testing.T) {
	rcv := otlptest.Start(t)
	p := startBilling(t, billingOptions{extra: map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL,
		"OTEL_SERVICE_NAME":           "cloudphone-e2e",
	}})
	if !tracing.Enabled() {
		t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	_, tok := p.buyer(t, "traced", 5000)

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var o billing.Order
	st := call(t, "POST", p.base+"/api/v1/orders", map[string]string{"plan_id": "basic"}, &o,
		append(billingBearer(tok), "Idempotency-Key", "traced-1", "Traceparent", "00-"+traceID+"-"+callerSpan+"-01")...)
	if st != http.StatusAccepted {
		t.Fatalf("order: %d", st)
	}
	if o = p.settled(t, tok, o.ID, 20*time.Second); o.Status != billing.OrderActive {
		t.Fatalf("order %+v", o)
	}

	handled := []string{ // every hop of the saga, up to the activation's consumer
		"handle " + userevents.EventQuotaGrantRequested,
		"handle " + userevents.EventQuotaGranted,
		"handle " + billingevents.EventOrderActivated,
	}
	var spans []otlptest.Span
	eventually(t, 20*time.Second, "every hop's span is exported", func() bool {
		_ = tracing.ForceFlush(context.Background())
		spans = rcv.Trace(traceID)
		for _, name := range handled {
			if !slices.ContainsFunc(spans, func(s otlptest.Span) bool { return s.Name == name }) {
				return false
			}
		}
		return true
	})

	ids := map[string]otlptest.Span{}
	for _, s := range spans {
		ids[s.SpanID] = s
	}
	var roots []string
	names := map[string]int{}
	for _, s := range spans {
		names[s.Name]++
		if s.Service != "cloudphone-e2e" {
			t.Errorf("%s: service.name %q", s.Name, s.Service)
		}
		if s.ParentID == callerSpan {
			roots = append(roots, s.Name)
			continue
		}
		if _, ok := ids[s.ParentID]; !ok {
			t.Errorf("%s: parent %s is not a span of the trace", s.Name, s.ParentID)
		}
	}
	if len(roots) != 1 || roots[0] != "POST /api/v1/orders" {
		t.Errorf("children of the caller's span: %v, want the request's span only", roots)
	}
	// Each handled event was published by a relay (or replied) and delivered
	// by the broker, and its handling is the delivery's child.
	for _, name := range handled {
		typ := strings.TrimPrefix(name, "handle ")
		for _, s := range spans {
			if s.Name != name {
				continue
			}
			if parent := ids[s.ParentID]; parent.Name != "deliver "+typ {
				t.Errorf("%s: parent %q, want the broker's delivery", name, parent.Name)
			}
		}
	}
	for _, typ := range []string{userevents.EventQuotaGrantRequested, billingevents.EventOrderActivated} {
		if names["publish "+typ] == 0 {
			t.Errorf("no outbox publish span for %s: %v", typ, names)
		}
	}
	if t.Failed() {
		t.Logf("spans: %v", names)
	}
}
