// Package broker is the local platform's embedded event broker. It routes
// CloudEvents by the same Knative v1 Trigger files that production uses
// (filters, subscriber, delivery retry/backoff/timeout/dead-letter sink) and
// keeps every undelivered event in Postgres, so a restart loses nothing.
//
// With Options.DirectWait, Send delivers each event at once and stores only
// the deliveries that failed or were still running after the wait (see
// direct.go). Without it, Send stores one delivery row per matching trigger
// before it returns. Run
// claims due rows with FOR UPDATE SKIP LOCKED (several brokers may share one
// database), hands them to a Deliverer, and treats the answer as Knative's
// dispatcher does: 2xx is done (a reply event is routed in the same
// transaction), 5xx, 404, 408, 409, 429 and transport failures are retried
// with the trigger's backoff, other statuses are permanent; a delivery that
// cannot succeed goes to the trigger's dead-letter sink, and when that fails
// too the row is kept as dead until Redrive.
package broker

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the broker's tables (broker_deliveries, broker_owners). Apply it with
// db.Open on the database the broker is given.
var Migrations = db.Embedded("broker", migrationFiles, "migrations")

// Deliverer hands one event to a subscriber (locally: calls the function in
// process) and reports the HTTP status it answered with and the reply event
// it returned, if any. A non-nil err with a status of 0 or 2xx is a transport
// failure and is treated like a 500; a non-nil err with another status only
// explains that status (its text is kept as the response body). Deliver must
// honour ctx's deadline. It is called concurrently.
type Deliverer interface {
	Deliver(ctx context.Context, subscriber string, e event.Event) (status int, reply *event.Event, err error)
}

// DelivererFunc adapts a function to Deliverer.
type DelivererFunc func(ctx context.Context, subscriber string, e event.Event) (int, *event.Event, error)

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, subscriber string, e event.Event) (int, *event.Event, error) {
	return f(ctx, subscriber, e)
}

// Options tune a Broker; the zero value is usable.
type Options struct {
	Log          *slog.Logger     // discards when nil
	Metrics      *metrics.Metrics // optional: Deliveries{function=subscriber, type, outcome}
	Workers      int              // deliveries in flight per Run; default 16
	PollInterval time.Duration    // how often Run looks for due retries; default 100 ms
	Now          func() time.Time // clock; default time.Now
	// Owner names this broker among those sharing the database, the same
	// across its restarts (the local platform: its data directory). Its
	// claims carry it, and Run first gives back the claims a previous
	// broker of the same owner left when it died, so that its deliveries
	// go on within seconds of a restart instead of when their lease
	// lapses. One owner runs one broker at a time. Empty: a name of this
	// broker alone, so only the heartbeat frees its claims.
	Owner string
	// HeartbeatInterval is how often a running broker records that its
	// owner is alive; default 1 s. Every interval it also takes over the
	// claimed deliveries of owners whose heartbeat is older than
	// HeartbeatExpiry intervals: their broker died (without coming back),
	// and its deliveries go on within seconds rather than after their
	// lease. A live owner's claims are never taken.
	HeartbeatInterval time.Duration
	// Policy is which sender may send which event types (the EventPolicies
	// rendered from the catalog). When set, Send refuses an event whose
	// sender (eventauth.SenderFrom) it does not allow, and a subscriber's
	// reply of a type its identity may not send is not routed. Nil checks
	// nothing: only tests of the routing leave it unset.
	Policy *eventauth.Policy
	// Verifier checks the sender tokens of events POSTed to the ingress;
	// without it the ingress refuses every event (401).
	Verifier *eventauth.Verifier
	// DirectWait, when positive, makes Send deliver each event at once
	// instead of storing it first, waiting up to DirectWait for its
	// deliveries (and the replies they lead to) and storing only those
	// that failed or were not done by then (see direct.go). Zero stores
	// every delivery before Send returns, for Run to dispatch.
	DirectWait time.Duration
}

// Defaults of Options.
const (
	DefaultWorkers      = 16
	DefaultPollInterval = 100 * time.Millisecond
	DefaultHeartbeat    = time.Second
	// HeartbeatExpiry is how many heartbeat intervals an owner may miss
	// before another broker takes over its claims: enough to ride out a
	// slow database round trip or a pause of a loaded machine, short enough
	// that a crashed broker's deliveries go on within seconds.
	HeartbeatExpiry = 5
	// claimGrace is added to the longest trigger timeout to get the time a
	// claimed row stays invisible to other dispatchers; a dispatcher that
	// died mid-delivery gives its rows back after it.
	claimGrace = 30 * time.Second
	// DefaultDirectWait is the DirectWait the platform's brokers use: long
	// enough for any handler that answers at once, short enough that a slow
	// one holds its sender (the outbox relay) for no more than a second.
	DefaultDirectWait = time.Second
)

// Broker routes events to the subscribers of matching triggers. Safe for
// concurrent use; Send and ServeHTTP may be called while Run is running.
type Broker struct {
	pool     *pgxpool.Pool
	triggers []Trigger
	byName   map[string]Trigger
	d        Deliverer
	log      *slog.Logger
	metrics  *metrics.Metrics
	policy   *eventauth.Policy
	verifier *eventauth.Verifier
	workers  int
	poll     time.Duration
	now      func() time.Time
	lease    time.Duration
	owner    string
	beat     time.Duration
	direct   time.Duration
	wake     chan struct{}

	completing  sync.Mutex    // guards completions and recording
	completions []*completion // delivered rows waiting for a transaction
	recording   bool          // a complete call is recording completions
}

// New returns a broker over pool (which must hold the Migrations) routing by
// triggers to d. Unset delivery fields of the triggers take their defaults
// (exponential backoff, DefaultBackoffDelay, DefaultTimeout). It fails when
// pool or d is nil, a trigger is invalid, or two triggers share a name.
func New(pool *pgxpool.Pool, triggers []Trigger, d Deliverer, opts Options) (*Broker, error) {
	if pool == nil {
		return nil, errors.New("broker: no database pool")
	}
	if d == nil {
		return nil, errors.New("broker: no deliverer")
	}
	b := &Broker{
		pool:     pool,
		byName:   make(map[string]Trigger, len(triggers)),
		d:        d,
		log:      opts.Log,
		metrics:  opts.Metrics,
		policy:   opts.Policy,
		verifier: opts.Verifier,
		workers:  opts.Workers,
		poll:     opts.PollInterval,
		now:      opts.Now,
		owner:    opts.Owner,
		beat:     opts.HeartbeatInterval,
		direct:   opts.DirectWait,
		wake:     make(chan struct{}, 1),
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.workers <= 0 {
		b.workers = DefaultWorkers
	}
	if b.poll <= 0 {
		b.poll = DefaultPollInterval
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.owner == "" {
		b.owner = "instance-" + events.NewID()
	}
	if b.beat <= 0 {
		b.beat = DefaultHeartbeat
	}
	longest := DefaultTimeout
	for _, t := range triggers {
		if err := t.validate(); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		if _, dup := b.byName[t.Name]; dup {
			return nil, fmt.Errorf("broker: two triggers named %s", t.Name)
		}
		t.Delivery = t.Delivery.withDefaults()
		t.filter = t.compile()
		longest = max(longest, t.Delivery.Timeout)
		b.byName[t.Name] = t
		b.triggers = append(b.triggers, t)
	}
	b.lease = longest + claimGrace
	return b, nil
}

// Triggers returns the broker's triggers with their defaults applied.
func (b *Broker) Triggers() []Trigger {
	return append([]Trigger(nil), b.triggers...)
}

// Send validates e and stores one delivery per matching trigger, all in one
// statement, before it returns nil: an accepted event survives a crash. With
// DirectWait it instead returns nil once each delivery succeeded or is
// stored. An
// event that matches no trigger is accepted and dropped, as Knative does. An
// invalid event is an apierr Invalid; a database failure is an apierr
// Unavailable (the sender should retry). With a Policy, an event from a
// sender it does not allow is an apierr Forbidden (Unauthorized when ctx names
// no sender), counted in EventsRefused, and nothing is stored.
func (b *Broker) Send(ctx context.Context, e event.Event) error {
	return b.SendBatch(ctx, []event.Event{e})[0]
}

// SendBatch is Send for several events at once: each is checked on its own,
// and the deliveries of all it admits are stored in one statement. It returns
// one error per event, as Send would for it.
func (b *Broker) SendBatch(ctx context.Context, evs []event.Event) []error {
	errs := make([]error, len(evs))
	var r routing
	var admitted []int
	for i, e := range evs {
		if errs[i] = b.admit(ctx, e); errs[i] != nil {
			continue
		}
		if b.direct > 0 {
			admitted = append(admitted, i)
			continue
		}
		n, err := b.match(&r, e)
		if err != nil {
			errs[i] = err
			continue
		}
		log := b.log.With("event_id", e.ID(), "event_type", e.Type(), "event_source", e.Source())
		if n == 0 {
			log.DebugContext(ctx, "event matches no trigger, dropped")
			continue
		}
		log.DebugContext(ctx, "event accepted", "deliveries", n)
		admitted = append(admitted, i)
	}
	if b.direct > 0 {
		b.sendDirect(ctx, evs, admitted, errs)
		return errs
	}
	if err := b.store(ctx, b.pool, &r); err != nil {
		for _, i := range admitted {
			errs[i] = err
		}
		return errs
	}
	if len(admitted) > 0 {
		b.notify()
	}
	return errs
}

// admit checks e is valid and that the sender ctx names may send it.
func (b *Broker) admit(ctx context.Context, e event.Event) error {
	if err := e.Validate(); err != nil {
		return apierr.Wrap(apierr.Invalid, err, "invalid CloudEvent: %v", err)
	}
	if b.policy != nil {
		sender := eventauth.SenderFrom(ctx)
		if sender == "" {
			b.refused("unauthenticated")
			return apierr.New(apierr.Unauthorized, "the sender of event %s is not known", e.ID())
		}
		if err := b.policy.Check(sender, e.Type()); err != nil {
			b.refused("forbidden")
			b.log.WarnContext(ctx, "event refused by the event policy", "sender", sender, "event_type", e.Type(), "event_id", e.ID())
			return err
		}
	}
	return nil
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const insertDeliveries = `
INSERT INTO broker_deliveries (trigger, subscriber, event, next_attempt_at, created_at, updated_at)
SELECT t.trigger, t.subscriber, t.event, $4, $4, $4
FROM unnest($1::text[], $2::text[], $3::json[]) AS t(trigger, subscriber, event)`

// routing is the deliveries of some events, one per (event, matching
// trigger), to be stored in one statement.
type routing struct {
	triggers, subscribers []string
	docs                  [][]byte
	ids                   []string // of the events
}

// match adds a delivery of e to r for each trigger e matches and returns how
// many it added.
func (b *Broker) match(r *routing, e event.Event) (int, error) {
	var doc []byte
	n := 0
	for _, t := range b.triggers {
		if !t.Matches(e) {
			continue
		}
		if doc == nil {
			var err error
			if doc, err = json.Marshal(e); err != nil {
				return 0, apierr.Wrap(apierr.Invalid, err, "event %s cannot be encoded: %v", e.ID(), err)
			}
			r.ids = append(r.ids, e.ID())
		}
		r.triggers = append(r.triggers, t.Name)
		r.subscribers = append(r.subscribers, t.Subscriber)
		r.docs = append(r.docs, doc)
		n++
	}
	return n, nil
}

// store inserts r's deliveries; with none it does nothing.
func (b *Broker) store(ctx context.Context, x execer, r *routing) error {
	if len(r.triggers) == 0 {
		return nil
	}
	if _, err := x.Exec(ctx, insertDeliveries, r.triggers, r.subscribers, r.docs, b.now().UTC()); err != nil {
		what := "event " + r.ids[0]
		if len(r.ids) > 1 {
			what = fmt.Sprintf("%d events (first %s)", len(r.ids), r.ids[0])
		}
		return apierr.Wrap(apierr.Unavailable, fmt.Errorf("store deliveries of %s: %w", what, err), "the broker cannot store the event")
	}
	return nil
}

// notify wakes the dispatcher without blocking.
func (b *Broker) notify() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// refused counts an event the broker did not admit.
func (b *Broker) refused(reason string) {
	if b.metrics != nil {
		b.metrics.EventsRefused.WithLabelValues(eventauth.BrokerAudience, reason).Inc()
	}
}

// count adds one to the Deliveries counter when metrics are on.
func (b *Broker) count(subscriber, typ, outcome string) {
	if b.metrics != nil {
		b.metrics.Deliveries.WithLabelValues(subscriber, typ, outcome).Inc()
	}
}
