package broker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

type keyPair struct {
	signer   *eventauth.Signer
	verifier *eventauth.Verifier
}

func newKeyPair() keyPair {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	s, err := eventauth.NewSigner(priv)
	if err != nil {
		panic(err)
	}
	v, err := eventauth.NewVerifier(pub)
	if err != nil {
		panic(err)
	}
	return keyPair{s, v}
}

// testKeys sign and verify the sender tokens of the broker tests.
var testKeys = newKeyPair()

// signAs gives req a sender token of sender for the broker.
func signAs(t *testing.T, req *http.Request, sender string) {
	t.Helper()
	if err := testKeys.signer.Authorize(req, sender, eventauth.BrokerAudience); err != nil {
		t.Fatal(err)
	}
}

func TestIngressAdmitsOnlyAllowedSendersWithValidTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := metrics.New()
	policy := eventauth.NewPolicy(map[string][]string{"billing": {typePaid}})
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{})}, Options{Policy: policy, Metrics: m})
	run(t, b)
	other := newKeyPair()
	otherSigner := func(req *http.Request) {
		if err := other.signer.Authorize(req, "billing", eventauth.BrokerAudience); err != nil {
			t.Fatal(err)
		}
	}
	wrongAudience := func(req *http.Request) {
		if err := testKeys.signer.Authorize(req, "billing", "billing-orders"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		auth   func(*http.Request)
		typ    string
		status int
		code   apierr.Code
	}{
		{"no token", func(*http.Request) {}, typePaid, 401, apierr.Unauthorized},
		{"garbage token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc.def.ghi") }, typePaid, 401, apierr.Unauthorized},
		{"token of another key", otherSigner, typePaid, 401, apierr.Unauthorized},
		{"token for a function, not the broker", wrongAudience, typePaid, 401, apierr.Unauthorized},
		{"sender not allowed this type", func(r *http.Request) { signAs(t, r, "device") }, typePaid, 403, apierr.Forbidden},
		{"type nobody may send", func(r *http.Request) { signAs(t, r, "billing") }, typeReserved, 403, apierr.Forbidden},
	}
	for _, tc := range tests {
		req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), "http://broker/", newEvent(t, tc.typ))
		if err != nil {
			t.Fatal(err)
		}
		tc.auth(req)
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, req)
		var body apierr.Body
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != tc.status || body.Error.Code != tc.code {
			t.Errorf("%s: answered %d %s, want %d %s", tc.name, rec.Code, body.Error.Code, tc.status, tc.code)
		}
	}
	if n := f.rows(t, "pending"); n != 0 {
		t.Errorf("%d deliveries stored from refused events", n)
	}
	if got := testutil.ToFloat64(m.EventsRefused.WithLabelValues("broker", "unauthenticated")); got != 4 {
		t.Errorf("unauthenticated refusals counted %v, want 4", got)
	}
	if got := testutil.ToFloat64(m.EventsRefused.WithLabelValues("broker", "forbidden")); got != 2 {
		t.Errorf("forbidden refusals counted %v, want 2", got)
	}

	allowed, err := cehttp.NewHTTPRequestFromEvent(context.Background(), "http://broker/", newEvent(t, typePaid))
	if err != nil {
		t.Fatal(err)
	}
	signAs(t, allowed, "billing")
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, allowed)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("allowed sender answered %d %s", rec.Code, rec.Body)
	}
	eventually(t, "the allowed event was delivered", func() bool { return len(f.subs.to("fn")) == 1 })
}

func TestSendInProcessNeedsAnAllowedSender(t *testing.T) {
	t.Parallel()
	f := setup(t)
	policy := eventauth.NewPolicy(map[string][]string{"billing": {typePaid}})
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{})}, Options{Policy: policy})
	ctx := context.Background()
	if err := b.Send(ctx, newEvent(t, typePaid)); apierr.CodeOf(err) != apierr.Unauthorized {
		t.Errorf("Send without a sender: %v, want unauthorized", err)
	}
	if err := b.Send(eventauth.WithSender(ctx, "device"), newEvent(t, typePaid)); apierr.CodeOf(err) != apierr.Forbidden {
		t.Errorf("Send as device: %v, want forbidden", err)
	}
	if err := b.Send(eventauth.WithSender(ctx, "billing"), newEvent(t, typePaid)); err != nil {
		t.Errorf("Send as billing: %v", err)
	}
}

func TestAReplyTheSubscriberMayNotSendIsNotRouted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	policy := eventauth.NewPolicy(map[string][]string{"billing": {typePaid}})
	policy.Member("fn", "billing")
	f.subs.setAnswer(func(_ context.Context, subscriber string, _ event.Event, _ int) (int, *event.Event, error) {
		if subscriber != "fn" {
			return http.StatusOK, nil, nil
		}
		r := newEvent(t, typeReserved) // billing may not send it
		return http.StatusOK, &r, nil
	})
	b := f.broker(t, []Trigger{
		trigger("paid", typePaid, "fn", Delivery{}),
		trigger("reserved", typeReserved, "shipper", Delivery{}),
	}, Options{Policy: policy})
	run(t, b)
	if err := b.Send(eventauth.WithSender(context.Background(), "billing"), newEvent(t, typePaid)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the delivery is dead", func() bool { return f.rows(t, "dead") == 1 })
	if n := len(f.subs.to("shipper")); n != 0 {
		t.Errorf("the forbidden reply reached its subscriber %d times", n)
	}
}
