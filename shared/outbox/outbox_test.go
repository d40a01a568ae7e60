package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

const testType = "cloudphone.test.thing.happened"

type fixture struct {
	pool    *pgxpool.Pool
	metrics *metrics.Metrics
}

func setup(t *testing.T) fixture {
	t.Helper()
	return fixture{pool: dbtest.Database(t, outbox.Migrations), metrics: metrics.New()}
}

func newEvent(t testing.TB, ctx context.Context, n int) event.Event {
	t.Helper()
	e, err := events.New(ctx, testType, "/cloudphone/test/outbox", fmt.Sprintf("thing-%d", n), map[string]int{"n": n})
	if err != nil {
		t.Fatalf("new event: %v", err)
	}
	return e
}

// add commits evs to the outbox in one transaction.
func (f fixture) add(t testing.TB, evs ...event.Event) {
	t.Helper()
	if err := db.WithTx(context.Background(), f.pool, func(tx pgx.Tx) error {
		return outbox.Add(context.Background(), tx, evs...)
	}); err != nil {
		t.Fatalf("add: %v", err)
	}
}

// run runs r until the test ends.
func run(t *testing.T, r *outbox.Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func (f fixture) rows(t testing.TB) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// counted reads the OutboxEvents counter of context "test".
func counted(t testing.TB, m *metrics.Metrics, outcome string) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.OutboxEvents.WithLabelValues("test", outcome).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a Sender that accepts everything and remembers it.
type recorder struct {
	mu   sync.Mutex
	got  []event.Event
	seen map[string]int
}

func (r *recorder) Send(_ context.Context, e event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	r.got = append(r.got, e)
	r.seen[e.ID()]++
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestAddPublishesCommittedEventsOnlyAndIntact(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := logging.WithCorrelation(context.Background(), "corr-1")
	kept, dropped := newEvent(t, ctx, 1), newEvent(t, ctx, 2)

	rolledBack := errors.New("roll back")
	err := db.WithTx(ctx, f.pool, func(tx pgx.Tx) error {
		if err := outbox.Add(ctx, tx, dropped); err != nil {
			return err
		}
		return rolledBack
	})
	if !errors.Is(err, rolledBack) {
		t.Fatalf("WithTx: %v", err)
	}
	f.add(t, kept)

	rec := &recorder{}
	run(t, outbox.NewRelay(f.pool, rec, outbox.Options{PollInterval: 20 * time.Millisecond}))
	waitFor(t, "the committed event", 5*time.Second, func() bool { return rec.count() == 1 })
	waitFor(t, "the outbox to empty", 5*time.Second, func() bool { return f.rows(t) == 0 })
	time.Sleep(100 * time.Millisecond) // several polls: the rolled-back event must not appear

	if n := rec.count(); n != 1 {
		t.Fatalf("sent %d events, want only the committed one", n)
	}
	got := rec.got[0]
	if got.ID() != kept.ID() || got.Type() != testType || got.Subject() != "thing-1" || got.Source() != kept.Source() {
		t.Errorf("sent %s %s %s %s, want the added event", got.ID(), got.Type(), got.Subject(), got.Source())
	}
	if string(got.Data()) != `{"n":1}` {
		t.Errorf("data = %s", got.Data())
	}
	if c := events.CorrelationOf(got); c != "corr-1" {
		t.Errorf("correlationid = %q, want corr-1", c)
	}
}

func TestAddRefusesInvalidEventsAndRepeatedIDs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	invalid := event.New() // no id, type or source
	err := db.WithTx(ctx, f.pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, invalid) })
	if err == nil {
		t.Error("Add accepted an invalid event")
	}

	e := newEvent(t, ctx, 1)
	err = db.WithTx(ctx, f.pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, e, e) })
	if err == nil {
		t.Error("Add accepted one event id twice")
	}
	if n := f.rows(t); n != 0 {
		t.Errorf("outbox has %d rows after failed adds", n)
	}
}

func TestThreeRelaysSendEveryRowExactlyOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const total = 600
	ctx := context.Background()
	for i := 0; i < total; i += 10 {
		evs := make([]event.Event, 10)
		for j := range evs {
			evs[j] = newEvent(t, ctx, i+j)
		}
		f.add(t, evs...)
	}

	var mu sync.Mutex
	sent := map[string]int{}
	var inFlight sync.Map
	var overlaps atomic.Int32
	sender := events.SenderFunc(func(_ context.Context, e event.Event) error {
		if _, busy := inFlight.LoadOrStore(e.ID(), true); busy {
			overlaps.Add(1)
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		inFlight.Delete(e.ID())
		mu.Lock()
		sent[e.ID()]++
		mu.Unlock()
		return nil
	})
	for range 3 {
		run(t, outbox.NewRelay(f.pool, sender, outbox.Options{
			Context: "test", BatchSize: 20, PollInterval: 20 * time.Millisecond, Metrics: f.metrics,
		}))
	}
	waitFor(t, "every row to be sent", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sent) == total
	})
	waitFor(t, "the outbox to empty", 5*time.Second, func() bool { return f.rows(t) == 0 })
	time.Sleep(100 * time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	for id, n := range sent {
		if n != 1 {
			t.Errorf("event %s sent %d times", id, n)
		}
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d sends overlapped another send of the same row", n)
	}
	if got := counted(t, f.metrics, outbox.OutcomePublished); got != total {
		t.Errorf("published metric = %v, want %d", got, total)
	}
}

func TestRelaySendsInIDOrderWithConcurrencyOne(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		evs := make([]event.Event, 10)
		for j := range evs {
			evs[j] = newEvent(t, ctx, i*10+j)
			want = append(want, evs[j].ID())
		}
		f.add(t, evs...)
	}
	rec := &recorder{}
	run(t, outbox.NewRelay(f.pool, rec, outbox.Options{Concurrency: 1, BatchSize: 7, PollInterval: 20 * time.Millisecond}))
	waitFor(t, "every row to be sent", 10*time.Second, func() bool { return rec.count() == len(want) })
	for i, e := range rec.got {
		if e.ID() != want[i] {
			t.Fatalf("event %d sent is %s, want %s: order lost", i, e.ID(), want[i])
		}
	}
}

func TestRelayWakesOnNotificationWithoutWaitingForPoll(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := &recorder{}
	run(t, outbox.NewRelay(f.pool, rec, outbox.Options{PollInterval: time.Hour}))
	time.Sleep(200 * time.Millisecond) // LISTEN in place; the first poll is done
	f.add(t, newEvent(t, context.Background(), 1))
	waitFor(t, "the notified event", 5*time.Second, func() bool { return rec.count() == 1 })
}

func TestRelayPollsWhenListenIsDisabled(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := &recorder{}
	run(t, outbox.NewRelay(f.pool, rec, outbox.Options{PollInterval: 50 * time.Millisecond, DisableListen: true}))
	time.Sleep(100 * time.Millisecond)
	f.add(t, newEvent(t, context.Background(), 1))
	waitFor(t, "the polled event", 5*time.Second, func() bool { return rec.count() == 1 })
}

type rowState struct {
	attempts      int
	status        string
	nextAttemptAt time.Time
	lastError     string
}

func (f fixture) state(t testing.TB, eventID string) rowState {
	t.Helper()
	var s rowState
	err := f.pool.QueryRow(context.Background(),
		`SELECT attempts, status, next_attempt_at, last_error FROM outbox WHERE event_id = $1`, eventID,
	).Scan(&s.attempts, &s.status, &s.nextAttemptAt, &s.lastError)
	if err != nil {
		t.Errorf("read outbox row %s: %v", eventID, err)
	}
	return s
}

func TestRelayRetriesWithGrowingBackoffThenDeadThenRedrivePublishes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	opt := outbox.Options{
		Context: "test", PollInterval: 20 * time.Millisecond,
		BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxAttempts: 3, Metrics: f.metrics,
	}
	e := newEvent(t, context.Background(), 1)
	f.add(t, e)

	var (
		mu      sync.Mutex
		failing = true
		calls   []time.Time
		seen    []rowState // the row as the previous attempt left it, read at each call
		sent    int
	)
	sender := events.SenderFunc(func(_ context.Context, got event.Event) error {
		s := f.state(t, got.ID())
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		seen = append(seen, s)
		if failing {
			return fmt.Errorf("broker down (attempt %d)", len(calls))
		}
		sent++
		return nil
	})
	relay := outbox.NewRelay(f.pool, sender, opt)
	run(t, relay)

	waitFor(t, "the row to die", 10*time.Second, func() bool { return f.state(t, e.ID()).status == outbox.StatusDead })
	final := f.state(t, e.ID())
	mu.Lock()
	if len(calls) != 3 {
		t.Fatalf("sender called %d times before the row died, want MaxAttempts = 3", len(calls))
	}
	states := append(slices.Clone(seen[1:]), final) // after failure 1, 2, 3
	for i, s := range states {
		if s.attempts != i+1 {
			t.Errorf("after failure %d attempts = %d", i+1, s.attempts)
		}
		if want := fmt.Sprintf("broker down (attempt %d)", i+1); s.lastError != want {
			t.Errorf("after failure %d last_error = %q, want %q", i+1, s.lastError, want)
		}
	}
	for i := 1; i < len(calls); i++ {
		if gap, min := calls[i].Sub(calls[i-1]), opt.Backoff(i); gap < min {
			t.Errorf("attempt %d came %v after the previous one, before its backoff %v", i+1, gap, min)
		}
	}
	if g1, g2 := states[1].nextAttemptAt.Sub(states[0].nextAttemptAt), states[2].nextAttemptAt.Sub(states[1].nextAttemptAt); !(g2 > g1) {
		t.Errorf("next_attempt_at steps %v then %v: backoff does not grow", g1, g2)
	}
	failing = false
	mu.Unlock()

	time.Sleep(150 * time.Millisecond) // a dead row is never retried on its own
	if n := len(calls); n != 3 {
		t.Fatalf("dead row was sent again (%d calls) before Redrive", n)
	}

	dead, err := relay.Dead(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].EventID != e.ID() || dead[0].Attempts != 3 || dead[0].Status != outbox.StatusDead {
		t.Fatalf("Dead = %+v, want the one dead row", dead)
	}
	if got, err := dead[0].Event(); err != nil || got.ID() != e.ID() {
		t.Errorf("dead row's Event() = %v, %v", got.ID(), err)
	}

	if n, err := relay.Redrive(context.Background(), dead[0].ID+1000); err != nil || n != 0 {
		t.Errorf("Redrive of an unknown id = %d, %v; want 0", n, err)
	}
	if n, err := relay.Redrive(context.Background()); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v; want 1", n, err)
	}
	// The relay counts a send after its transaction commits, so the row can
	// be gone a moment before the metric moves.
	waitFor(t, "the re-driven row to be published and counted", 5*time.Second, func() bool {
		return f.rows(t) == 0 && counted(t, f.metrics, outbox.OutcomePublished) == 1
	})

	mu.Lock()
	defer mu.Unlock()
	if sent != 1 {
		t.Errorf("sent %d times after Redrive, want 1", sent)
	}
	for outcome, want := range map[string]float64{
		outbox.OutcomeRetried: 2, outbox.OutcomeDead: 1, outbox.OutcomeRedriven: 1, outbox.OutcomePublished: 1,
	} {
		if got := counted(t, f.metrics, outcome); got != want {
			t.Errorf("metric %s = %v, want %v", outcome, got, want)
		}
	}
}

func TestRelayKillsUndecodableRowAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.pool.Exec(context.Background(),
		`INSERT INTO outbox (event_id, type, source, payload) VALUES ('bad', 't', 's', '\x7b'::bytea)`)
	if err != nil {
		t.Fatal(err)
	}
	run(t, outbox.NewRelay(f.pool, &recorder{}, outbox.Options{PollInterval: 20 * time.Millisecond}))
	waitFor(t, "the row to die", 5*time.Second, func() bool { return f.state(t, "bad").status == outbox.StatusDead })
	if s := f.state(t, "bad"); s.attempts != 1 {
		t.Errorf("attempts = %d, want 1", s.attempts)
	}
}

func TestRelayStopFinishesSendsInFlightAndLeavesTheRestPending(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	evs := make([]event.Event, 5)
	for i := range evs {
		evs[i] = newEvent(t, ctx, i)
	}
	f.add(t, evs...)

	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	sender := events.SenderFunc(func(ctx context.Context, e event.Event) error {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		return ctx.Err() // the send's context outlives Run's
	})
	relay := outbox.NewRelay(f.pool, sender, outbox.Options{Concurrency: 1, PollInterval: 20 * time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()

	<-started
	stop()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("sender called %d times after stop, want only the send in flight", n)
	}
	if n := f.rows(t); n != 4 {
		t.Errorf("outbox has %d rows, want 4: the sent one deleted, the rest kept", n)
	}
	var attempted int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE attempts > 0`).Scan(&attempted); err != nil || attempted != 0 {
		t.Errorf("%d rows marked as attempted (err %v), want 0", attempted, err)
	}
}
