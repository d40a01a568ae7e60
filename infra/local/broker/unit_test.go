package broker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// eventFn is an event function behind the fake gateway.
type eventFn struct {
	mu    sync.Mutex
	got   []event.Event
	reply string // type to reply with, if any
}

func (f *eventFn) Handle(_ context.Context, e event.Event) (*event.Event, error) {
	f.mu.Lock()
	f.got = append(f.got, e)
	f.mu.Unlock()
	if f.reply == "" {
		return nil, nil
	}
	r := event.New()
	r.SetID(e.ID() + "-reply")
	r.SetType(f.reply)
	r.SetSource("/test/fn-a")
	return &r, nil
}

func (f *eventFn) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

// The deployable unit over real HTTP, as on OpenFaaS: a producer posts with
// its token, the unit delivers through the gateway to the bundle with the
// broker's token, the reply is routed to the next subscriber. Without a
// token the unit and the functions refuse.
func TestTheUnitCarriesASagaStepOverHTTPWithTokensEachWay(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a, b := &eventFn{reply: typeReserved}, &eventFn{}
	admit := &eventauth.Receiver{Verifier: testKeys.verifier, Senders: []string{eventauth.Broker}}
	gw := http.NewServeMux()
	gw.Handle("POST /function/cloudphone-a/function/fn-a", &function.EventHandler{
		Spec: function.Spec{Name: "fn-a", Kind: function.KindEvent, Consumes: []string{typePaid}}, Fn: a, Log: logging.Discard(), Auth: admit})
	gw.Handle("POST /function/cloudphone-b/function/fn-b", &function.EventHandler{
		Spec: function.Spec{Name: "fn-b", Kind: function.KindEvent, Consumes: []string{typeReserved}}, Fn: b, Log: logging.Discard(), Auth: admit})
	gateway := httptest.NewServer(gw)
	t.Cleanup(gateway.Close)

	policy := eventauth.NewPolicy(map[string][]string{"billing": {typePaid}, "user": {typeReserved}})
	policy.Member("fn-a", "user")
	deliver := &HTTPDeliverer{Signer: testKeys.signer, URL: func(sub string) string {
		return gateway.URL + "/function/cloudphone-" + sub[len("fn-"):] + "/function/" + sub
	}}
	br, err := New(f.pool, []Trigger{
		trigger("paid", typePaid, "fn-a", Delivery{}),
		trigger("reserved", typeReserved, "fn-b", Delivery{}),
	}, deliver, Options{Policy: policy, Verifier: testKeys.verifier})
	if err != nil {
		t.Fatal(err)
	}
	unit := NewUnit(br, f.pool, nil, logging.Discard())
	if err := unit.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unit.Stop(context.Background()) })
	if ok, err := unit.Ready(context.Background()); !ok {
		t.Fatalf("unit not ready: %v", err)
	}
	ingress := httptest.NewServer(unit)
	t.Cleanup(ingress.Close)

	post := func(url string, sign func(*http.Request)) int {
		req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), url, newEvent(t, typePaid))
		if err != nil {
			t.Fatal(err)
		}
		sign(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(ingress.URL+"/", func(*http.Request) {}); code != http.StatusUnauthorized {
		t.Errorf("unit without a token: %d, want 401", code)
	}
	if code := post(gateway.URL+"/function/cloudphone-a/function/fn-a", func(r *http.Request) { signAs(t, r, "billing") }); code != http.StatusUnauthorized {
		t.Errorf("a producer straight to the function: %d, want 401", code)
	}
	if code := post(ingress.URL+"/", func(r *http.Request) { signAs(t, r, "billing") }); code != http.StatusAccepted {
		t.Fatalf("unit with billing's token: %d, want 202", code)
	}
	eventually(t, "the step and its reply were delivered", func() bool { return a.count() == 1 && b.count() == 1 })
}
