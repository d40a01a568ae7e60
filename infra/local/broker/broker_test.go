package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// call is one delivery the fake subscriber saw.
type call struct {
	subscriber string
	event      event.Event
	at         time.Time
	deadline   time.Time
}

// subscribers is the fake Deliverer: the functions behind the triggers.
// answer decides each response; n counts earlier calls for the same
// (subscriber, event id), from 0.
type subscribers struct {
	mu     sync.Mutex
	calls  []call
	answer func(ctx context.Context, subscriber string, e event.Event, n int) (int, *event.Event, error)
}

func (s *subscribers) Deliver(ctx context.Context, subscriber string, e event.Event) (int, *event.Event, error) {
	s.mu.Lock()
	n := 0
	for _, c := range s.calls {
		if c.subscriber == subscriber && c.event.ID() == e.ID() {
			n++
		}
	}
	deadline, _ := ctx.Deadline()
	s.calls = append(s.calls, call{subscriber: subscriber, event: e, at: time.Now(), deadline: deadline})
	answer := s.answer
	s.mu.Unlock()
	if answer == nil {
		return http.StatusOK, nil, nil
	}
	return answer(ctx, subscriber, e, n)
}

// to returns the calls made to subscriber, in order.
func (s *subscribers) to(subscriber string) []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []call
	for _, c := range s.calls {
		if c.subscriber == subscriber {
			out = append(out, c)
		}
	}
	return out
}

func (s *subscribers) setAnswer(f func(ctx context.Context, subscriber string, e event.Event, n int) (int, *event.Event, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = f
}

type fixture struct {
	pool *pgxpool.Pool
	subs *subscribers
}

func setup(t *testing.T) fixture {
	t.Helper()
	return fixture{pool: dbtest.Database(t, Migrations), subs: &subscribers{}}
}

// broker makes a broker on f's database routing by triggers.
func (f fixture) broker(t *testing.T, triggers []Trigger, opts Options) *Broker {
	t.Helper()
	if opts.Verifier == nil {
		opts.Verifier = testKeys.verifier
	}
	b, err := New(f.pool, triggers, f.subs, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// run runs b's dispatcher until the test ends (or until the returned stop is
// called) and fails the test if Run returns an error.
func run(t *testing.T, b *Broker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually fails the test when cond is not true within 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rows counts the stored deliveries with status.
func (f fixture) rows(t *testing.T, status string) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM broker_deliveries WHERE status = $1`, status).Scan(&n); err != nil {
		t.Fatalf("count %s rows: %v", status, err)
	}
	return n
}

func newEvent(t *testing.T, typ string) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/test/broker", "", map[string]string{"k": "v"})
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	return e
}

func trigger(name, typ, subscriber string, d Delivery) Trigger {
	return Trigger{Name: name, Broker: "cloudphone", Filters: []Filter{{Exact: map[string]string{"type": typ}}},
		Subscriber: subscriber, Delivery: d}
}

func send(t *testing.T, b *Broker, e event.Event) {
	t.Helper()
	if err := b.Send(context.Background(), e); err != nil {
		t.Fatalf("Send %s: %v", e.Type(), err)
	}
}

const (
	typePaid     = "cloudphone.billing.order.paid"
	typeReserved = "cloudphone.user.quota.reserved"
)

func TestSendFansOutToEveryMatchingTrigger(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := metrics.New()
	b := f.broker(t, []Trigger{
		trigger("paid-to-a", typePaid, "fn-a", Delivery{}),
		{Name: "billing-to-b", Filters: []Filter{{Prefix: map[string]string{"type": "cloudphone.billing."}}}, Subscriber: "fn-b"},
		trigger("reserved-to-c", typeReserved, "fn-c", Delivery{}),
	}, Options{Metrics: m})
	run(t, b)

	e := newEvent(t, typePaid)
	send(t, b, e)

	eventually(t, "fn-a and fn-b got the event", func() bool { return len(f.subs.to("fn-a")) == 1 && len(f.subs.to("fn-b")) == 1 })
	eventually(t, "both deliveries are removed", func() bool { return f.rows(t, "pending") == 0 })
	if got := f.subs.to("fn-a")[0].event.ID(); got != e.ID() {
		t.Errorf("fn-a got event %s, want %s", got, e.ID())
	}
	if n := len(f.subs.to("fn-c")); n != 0 {
		t.Errorf("fn-c got %d events for a trigger that does not match", n)
	}
	// The delivery is counted after its completion commits: the row can be
	// gone a moment before the counter moves.
	delivered := func() float64 {
		var got dto.Metric
		if err := m.Deliveries.WithLabelValues("fn-b", typePaid, OutcomeDelivered).Write(&got); err != nil {
			t.Fatal(err)
		}
		return got.GetCounter().GetValue()
	}
	eventually(t, "deliveries{fn-b, delivered} reaches 1", func() bool { return delivered() >= 1 })
	if v := delivered(); v != 1 {
		t.Errorf("deliveries{fn-b, delivered} = %v, want 1", v)
	}
}

func TestEventMatchingNoTriggerIsAcceptedAndDropped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{})}, Options{})
	send(t, b, newEvent(t, "cloudphone.nobody.listens"))
	if n := f.rows(t, "pending"); n != 0 {
		t.Errorf("%d rows stored for an event no trigger matches", n)
	}
}

func TestSendRefusesAnInvalidEventAsInvalid(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.broker(t, []Trigger{{Name: "all", Subscriber: "fn"}}, Options{})
	e := event.New()
	e.SetID("x")
	e.SetType(typePaid) // no source
	if err := b.Send(context.Background(), e); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("Send = %v, want an invalid error", err)
	}
	if n := f.rows(t, "pending"); n != 0 {
		t.Errorf("%d rows stored for an invalid event", n)
	}
}

func TestRetriesWithBackoffThenSucceeds(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.subs.setAnswer(func(_ context.Context, _ string, _ event.Event, n int) (int, *event.Event, error) {
		switch n {
		case 0:
			return http.StatusServiceUnavailable, nil, nil
		case 1:
			return 0, nil, errors.New("connection refused")
		}
		return http.StatusOK, nil, nil
	})
	d := Delivery{Retry: 3, BackoffPolicy: BackoffExponential, BackoffDelay: 100 * time.Millisecond, DeadLetterSink: "dead-letter"}
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", d)}, Options{PollInterval: 10 * time.Millisecond})
	run(t, b)
	send(t, b, newEvent(t, typePaid))

	eventually(t, "the third attempt succeeded and the row is gone", func() bool {
		return len(f.subs.to("fn")) == 3 && f.rows(t, "pending") == 0
	})
	calls := f.subs.to("fn")
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < want {
			t.Errorf("retry %d came after %v, want at least %v", i+1, gap, want)
		}
	}
	if n := len(f.subs.to("dead-letter")); n != 0 {
		t.Errorf("dead-letter sink got %d events for a delivery that succeeded", n)
	}
}

func TestPermanentFailureGoesStraightToTheDeadLetterSink(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			body := `{"error":{"code":"invalid","message":"bad payload"}}`
			f.subs.setAnswer(func(_ context.Context, sub string, _ event.Event, _ int) (int, *event.Event, error) {
				if sub == "fn" {
					return status, nil, errors.New(body)
				}
				return http.StatusAccepted, nil, nil
			})
			d := Delivery{Retry: 5, BackoffDelay: 100 * time.Millisecond, DeadLetterSink: "dead-letter"}
			b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", d)}, Options{})
			run(t, b)
			e := newEvent(t, typePaid)
			send(t, b, e)

			eventually(t, "the sink got the event", func() bool { return len(f.subs.to("dead-letter")) == 1 })
			eventually(t, "the row is gone", func() bool { return f.rows(t, "pending")+f.rows(t, "dead") == 0 })
			if n := len(f.subs.to("fn")); n != 1 {
				t.Errorf("fn was called %d times, want 1 (no retry for %d)", n, status)
			}
			got := f.subs.to("dead-letter")[0].event
			if got.ID() != e.ID() || got.Type() != e.Type() {
				t.Errorf("sink got %s/%s, want the original %s/%s", got.ID(), got.Type(), e.ID(), e.Type())
			}
			assertErrorExtensions(t, got, status, "fn", body)
		})
	}
}

func TestExhaustedRetriesGoToTheDeadLetterSink(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.subs.setAnswer(func(_ context.Context, sub string, _ event.Event, _ int) (int, *event.Event, error) {
		if sub == "fn" {
			return http.StatusTooManyRequests, nil, nil
		}
		return http.StatusOK, nil, nil
	})
	d := Delivery{Retry: 2, BackoffPolicy: BackoffLinear, BackoffDelay: 100 * time.Millisecond, DeadLetterSink: "dead-letter"}
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", d)}, Options{PollInterval: 10 * time.Millisecond})
	run(t, b)
	send(t, b, newEvent(t, typePaid))

	eventually(t, "the sink got the event", func() bool { return len(f.subs.to("dead-letter")) == 1 })
	calls := f.subs.to("fn")
	if len(calls) != 3 {
		t.Fatalf("fn was called %d times, want 1 + 2 retries", len(calls))
	}
	for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < want {
			t.Errorf("linear retry %d came after %v, want at least %v", i+1, gap, want)
		}
	}
	assertErrorExtensions(t, f.subs.to("dead-letter")[0].event, http.StatusTooManyRequests, "fn", "")
}

func TestFailedSinkLeavesADeadRowThatRedriveDelivers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var mu sync.Mutex
	fixed := false
	f.subs.setAnswer(func(_ context.Context, sub string, _ event.Event, _ int) (int, *event.Event, error) {
		mu.Lock()
		defer mu.Unlock()
		if sub == "fn" && fixed {
			return http.StatusOK, nil, nil
		}
		return http.StatusInternalServerError, nil, nil
	})
	d := Delivery{Retry: 1, BackoffPolicy: BackoffLinear, BackoffDelay: 100 * time.Millisecond, DeadLetterSink: "dead-letter"}
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", d)}, Options{PollInterval: 10 * time.Millisecond})
	run(t, b)
	e := newEvent(t, typePaid)
	send(t, b, e)

	eventually(t, "the row is dead", func() bool { return f.rows(t, "dead") == 1 })
	if fn, sink := len(f.subs.to("fn")), len(f.subs.to("dead-letter")); fn != 2 || sink != 2 {
		t.Errorf("fn got %d attempts and the sink %d, want 2 each (retry: 1)", fn, sink)
	}
	dead, err := b.Dead(context.Background(), 10)
	if err != nil {
		t.Fatalf("Dead: %v", err)
	}
	if len(dead) != 1 || dead[0].Event.ID() != e.ID() || !dead[0].DeadLetter || dead[0].LastStatus != 500 ||
		dead[0].Subscriber != "fn" || dead[0].Trigger != "paid" {
		t.Fatalf("Dead = %+v", dead)
	}

	mu.Lock()
	fixed = true
	mu.Unlock()
	n, err := b.Redrive(context.Background(), dead[0].ID)
	if err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v; want 1", n, err)
	}
	eventually(t, "the redriven delivery reached fn", func() bool { return f.rows(t, "dead")+f.rows(t, "pending") == 0 })
	if calls := f.subs.to("fn"); len(calls) != 3 || calls[2].event.Extensions()[ExtErrorCode] != nil {
		t.Errorf("fn got %d calls; a redriven event must be the original, without error extensions", len(calls))
	}
	if n, err := b.Redrive(context.Background()); err != nil || n != 0 {
		t.Errorf("Redrive of nothing = %d, %v; want 0", n, err)
	}
}

func TestPermanentFailureWithoutSinkIsDead(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.subs.setAnswer(func(context.Context, string, event.Event, int) (int, *event.Event, error) {
		return http.StatusUnprocessableEntity, nil, nil
	})
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{Retry: 3})}, Options{})
	run(t, b)
	send(t, b, newEvent(t, typePaid))
	eventually(t, "the row is dead", func() bool { return f.rows(t, "dead") == 1 })
	if n := len(f.subs.to("fn")); n != 1 {
		t.Errorf("fn was called %d times, want 1", n)
	}
}

func TestReplyIsRoutedToItsTrigger(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.subs.setAnswer(func(_ context.Context, sub string, e event.Event, _ int) (int, *event.Event, error) {
		if sub != "billing-step" {
			return http.StatusOK, nil, nil
		}
		reply, err := events.New(events.WithCause(context.Background(), e), typeReserved, "/cloudphone/billing/step", "", nil)
		if err != nil {
			return http.StatusInternalServerError, nil, err
		}
		return http.StatusOK, &reply, nil
	})
	b := f.broker(t, []Trigger{
		trigger("paid-to-step", typePaid, "billing-step", Delivery{}),
		trigger("reserved-to-user", typeReserved, "user-step", Delivery{}),
	}, Options{})
	run(t, b)
	e := newEvent(t, typePaid)
	send(t, b, e)

	eventually(t, "the reply reached user-step", func() bool { return len(f.subs.to("user-step")) == 1 })
	got := f.subs.to("user-step")[0].event
	if got.Type() != typeReserved || got.Extensions()[events.ExtCausation] != e.ID() {
		t.Errorf("user-step got %s caused by %v, want %s caused by %s", got.Type(), got.Extensions()[events.ExtCausation], typeReserved, e.ID())
	}
	eventually(t, "no row is left", func() bool { return f.rows(t, "pending") == 0 })
}

func TestReplyOfTheSameTypeIsRefusedAsALoop(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.subs.setAnswer(func(_ context.Context, _ string, e event.Event, _ int) (int, *event.Event, error) {
		reply := newEvent(t, e.Type())
		return http.StatusOK, &reply, nil
	})
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{Retry: 3, DeadLetterSink: "dead-letter"})}, Options{})
	run(t, b)
	send(t, b, newEvent(t, typePaid))

	eventually(t, "the row is dead", func() bool { return f.rows(t, "dead") == 1 })
	dead, err := b.Dead(context.Background(), 0)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].LastError, "reply loop") {
		t.Fatalf("Dead = %+v, %v; want one row refused as a reply loop", dead, err)
	}
	if fn, sink := len(f.subs.to("fn")), len(f.subs.to("dead-letter")); fn != 1 || sink != 0 {
		t.Errorf("fn got %d calls and the sink %d, want 1 and 0", fn, sink)
	}
}

func TestInvalidReplyIsAFailedDelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply func() event.Event
	}{
		{"no source", func() event.Event {
			r := event.New()
			r.SetID("r")
			r.SetType(typeReserved)
			return r
		}},
		{"extension name CloudEvents forbids", func() event.Event {
			r := event.New()
			r.SetID("r")
			r.SetType(typeReserved)
			r.SetSource("/cloudphone/test/broker")
			r.SetExtension("saga-id", "7")
			return r
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			f.subs.setAnswer(func(_ context.Context, sub string, _ event.Event, _ int) (int, *event.Event, error) {
				if sub != "fn" {
					return http.StatusOK, nil, nil
				}
				reply := tc.reply()
				return http.StatusOK, &reply, nil
			})
			b := f.broker(t, []Trigger{
				trigger("paid", typePaid, "fn", Delivery{Retry: 1, BackoffDelay: 100 * time.Millisecond, DeadLetterSink: "dead-letter"}),
				trigger("reserved", typeReserved, "user-step", Delivery{}),
			}, Options{PollInterval: 10 * time.Millisecond})
			run(t, b)
			send(t, b, newEvent(t, typePaid))

			eventually(t, "the sink got the event", func() bool { return len(f.subs.to("dead-letter")) == 1 })
			if fn, user := len(f.subs.to("fn")), len(f.subs.to("user-step")); fn != 2 || user != 0 {
				t.Errorf("fn got %d calls and user-step %d, want 2 (retried) and 0 (reply dropped)", fn, user)
			}
			assertErrorExtensions(t, f.subs.to("dead-letter")[0].event, http.StatusBadGateway, "fn", "invalid reply event")
		})
	}
}

func TestDeliveryTimeoutBoundsEachAttempt(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.subs.setAnswer(func(ctx context.Context, _ string, _ event.Event, n int) (int, *event.Event, error) {
		if n == 0 {
			<-ctx.Done()
			return 0, nil, ctx.Err()
		}
		return http.StatusOK, nil, nil
	})
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{Retry: 1, BackoffDelay: 100 * time.Millisecond, Timeout: 300 * time.Millisecond})},
		Options{PollInterval: 10 * time.Millisecond})
	run(t, b)
	send(t, b, newEvent(t, typePaid))

	eventually(t, "the retry succeeded", func() bool { return len(f.subs.to("fn")) == 2 && f.rows(t, "pending") == 0 })
	first := f.subs.to("fn")[0]
	if budget := first.deadline.Sub(first.at); budget <= 0 || budget > 300*time.Millisecond {
		t.Errorf("the attempt had %v to run, want at most the trigger's 300ms", budget)
	}
}

func TestAcceptedEventSurvivesABrokerCrash(t *testing.T) {
	t.Parallel()
	f := setup(t)
	triggers := []Trigger{trigger("paid", typePaid, "fn", Delivery{})}

	first := f.broker(t, triggers, Options{})
	stop := run(t, first)
	stop() // the dispatcher is gone before anything is delivered
	e := newEvent(t, typePaid)
	send(t, first, e)
	if n := len(f.subs.to("fn")); n != 0 {
		t.Fatalf("fn got %d events from a stopped broker", n)
	}

	other, err := New(reopen(t, f.pool), triggers, f.subs, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	run(t, other)
	eventually(t, "the restarted broker delivered the event", func() bool { return len(f.subs.to("fn")) == 1 })
	if got := f.subs.to("fn")[0].event; got.ID() != e.ID() || string(got.Data()) != string(e.Data()) {
		t.Errorf("delivered %s %s, want %s %s", got.ID(), got.Data(), e.ID(), e.Data())
	}
}

func TestClaimOfADeadDispatcherLapsesAndAnotherDelivers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	triggers := []Trigger{trigger("paid", typePaid, "fn", Delivery{})}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.subs.setAnswer(func(context.Context, string, event.Event, int) (int, *event.Event, error) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(entered)
			<-release // hangs like a dispatcher that died mid-delivery
		}
		return http.StatusOK, nil, nil
	})
	hung := f.broker(t, triggers, Options{})
	stopHung := run(t, hung)
	send(t, hung, newEvent(t, typePaid))
	<-entered

	later := func() time.Time { return time.Now().Add(DefaultTimeout + claimGrace + time.Second) }
	other, err := New(reopen(t, f.pool), triggers, f.subs, Options{Now: later})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	run(t, other)
	eventually(t, "the second dispatcher delivered and removed the row", func() bool {
		return len(f.subs.to("fn")) == 2 && f.rows(t, "pending") == 0
	})
	close(release)
	stopHung() // its late result must not disturb anything
	if n := f.rows(t, "pending") + f.rows(t, "dead"); n != 0 {
		t.Errorf("%d rows left after the lapsed dispatcher finished", n)
	}
}

func TestTwoDispatchersDeliverEachRowOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	triggers := []Trigger{trigger("paid", typePaid, "fn", Delivery{})}
	one := f.broker(t, triggers, Options{Workers: 4})
	two, err := New(reopen(t, f.pool), triggers, f.subs, Options{Workers: 4})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	run(t, one)
	run(t, two)

	const n = 200
	for i := range n {
		b := one
		if i%2 == 1 {
			b = two
		}
		send(t, b, newEvent(t, typePaid))
	}
	eventually(t, "every event was delivered", func() bool { return f.rows(t, "pending") == 0 && len(f.subs.to("fn")) >= n })
	seen := map[string]int{}
	for _, c := range f.subs.to("fn") {
		seen[c.event.ID()]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct events delivered, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("event %s delivered %d times", id, k)
		}
	}
}

func TestNewRefusesMissingDependenciesAndBadTriggers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ok := trigger("paid", typePaid, "fn", Delivery{})
	tests := []struct {
		name     string
		pool     *pgxpool.Pool
		d        Deliverer
		triggers []Trigger
	}{
		{"no pool", nil, f.subs, []Trigger{ok}},
		{"no deliverer", f.pool, nil, []Trigger{ok}},
		{"duplicate trigger", f.pool, f.subs, []Trigger{ok, ok}},
		{"no subscriber", f.pool, f.subs, []Trigger{{Name: "x"}}},
		{"bad policy", f.pool, f.subs, []Trigger{trigger("x", typePaid, "fn", Delivery{BackoffPolicy: "random"})}},
	}
	for _, tc := range tests {
		if _, err := New(tc.pool, tc.triggers, tc.d, Options{}); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

// assertErrorExtensions checks Knative's dead-letter extensions on e.
func assertErrorExtensions(t *testing.T, e event.Event, code int, dest, dataContains string) {
	t.Helper()
	ext := e.Extensions()
	if got, err := types.ToInteger(ext[ExtErrorCode]); err != nil || int(got) != code {
		t.Errorf("%s = %v, want %d", ExtErrorCode, ext[ExtErrorCode], code)
	}
	if ext[ExtErrorDest] != dest {
		t.Errorf("%s = %v, want %s", ExtErrorDest, ext[ExtErrorDest], dest)
	}
	if dataContains == "" {
		return
	}
	s, _ := ext[ExtErrorData].(string)
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !strings.Contains(string(data), dataContains) {
		t.Errorf("%s = %q (%q, %v), want base64 of a body containing %q", ExtErrorData, s, data, err, dataContains)
	}
}

// reopen returns a second pool on pool's database, as another process would
// have.
func reopen(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	other, err := db.Open(context.Background(), dbtest.BaseURL(t), pool.Config().ConnConfig.Database, Migrations)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(other.Close)
	return other
}

// A broker that restarts under the same owner takes back at once the
// deliveries its dead predecessor had claimed (instead of after their
// lease, minutes later); a broker of another owner, with no heartbeat of
// the first owner to judge by, leaves them alone.
func TestARestartedBrokerResumesItsOwnClaimedDeliveriesAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	triggers := []Trigger{trigger("t-resume", "cloudphone.test.resume", "fn", Delivery{Timeout: 2 * time.Minute})}
	first := f.broker(t, triggers, Options{Owner: "host:/data/a"})
	send(t, first, newEvent(t, "cloudphone.test.resume"))
	// The first broker claimed the delivery and died mid-delivery: its claim
	// holds for the lease (the trigger's timeout plus 30 s).
	if _, err := f.pool.Exec(context.Background(), `UPDATE broker_deliveries SET claim = 'host:/data/a/' || id,
		attempts = 1, next_attempt_at = now() + interval '150 seconds'`); err != nil {
		t.Fatal(err)
	}

	stopOther := run(t, f.broker(t, triggers, Options{Owner: "host:/data/b", PollInterval: 20 * time.Millisecond}))
	time.Sleep(500 * time.Millisecond)
	stopOther()
	if n := len(f.subs.to("fn")); n != 0 {
		t.Fatalf("a broker of another owner delivered %d times before the lease lapsed", n)
	}

	restarted := time.Now()
	run(t, f.broker(t, triggers, Options{Owner: "host:/data/a"}))
	eventually(t, "the restarted broker delivered its own claimed delivery", func() bool { return len(f.subs.to("fn")) == 1 })
	t.Logf("delivered %s after the restart", time.Since(restarted).Round(time.Millisecond))
	eventually(t, "the delivery was completed", func() bool { return f.rows(t, "pending") == 0 })
}
