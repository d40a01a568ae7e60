package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/tracing"
	"github.com/cloudphone/cloudphone/shared/workqueue"
)

// Extensions set on an event sent to a dead-letter sink, as Knative sets them.
const (
	ExtErrorCode = "knativeerrorcode" // status of the last failed attempt (500 for a transport failure)
	ExtErrorData = "knativeerrordata" // base64 of up to MaxErrorData bytes of its response body
	ExtErrorDest = "knativeerrordest" // the subscriber that failed
)

// MaxErrorData is how much of a failed response body reaches the dead-letter
// sink.
const MaxErrorData = 1 << 10

// Deliveries counter outcomes reported by the broker.
const (
	OutcomeDelivered    = "delivered"
	OutcomeRetried      = "retry_scheduled"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDead         = "dead"
)

// errClaimLost aborts a result transaction whose row another dispatcher took
// over after the claim lapsed.
var errClaimLost = errors.New("claim lapsed: another dispatcher owns the delivery")

// claimed is a delivery row held by this dispatcher.
type claimed struct {
	id         int64
	trigger    string
	subscriber string
	event      []byte
	attempts   int
	deadLetter bool
	errorCode  *int32
	errorData  []byte
	claim      string
}

// Run dispatches due deliveries until ctx is done, with at most
// Options.Workers in flight. It wakes on Send and otherwise polls every
// Options.PollInterval for due retries. Several Run loops, in one process or
// many, may share the database: each row is claimed by one of them at a time.
// While Run runs, it beats for its Owner every Options.HeartbeatInterval. A
// claimed row whose dispatcher dies becomes due again as soon as a broker of
// the same Owner runs, or when another broker sees that the owner's heartbeat
// stopped (HeartbeatExpiry intervals), or at the latest after the longest
// trigger timeout plus 30 s. When ctx is done Run stops claiming, lets the
// deliveries in flight finish (each bounded by its trigger's timeout; the
// heartbeat goes on meanwhile) and records their results, then returns nil.
// Database errors are logged and retried, never returned.
func (b *Broker) Run(ctx context.Context) error {
	beating, stopBeating := context.WithCancel(context.WithoutCancel(ctx))
	first, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		b.heartbeat(beating, first)
	}()
	defer func() {
		stopBeating()
		<-stopped
	}()
	<-first // claims are made only by a broker that beats
	done := make(chan struct{}, b.workers)
	inFlight := 0
	defer func() {
		for ; inFlight > 0; inFlight-- {
			<-done
		}
	}()
	b.resume(ctx)
	ticker := time.NewTicker(b.poll)
	defer ticker.Stop()
	work := context.WithoutCancel(ctx)
	for {
		if free := b.workers - inFlight; free > 0 && ctx.Err() == nil {
			rows, err := b.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				b.log.ErrorContext(ctx, "claim deliveries", "err", err)
			}
			for _, r := range rows {
				inFlight++
				go func() {
					defer func() { done <- struct{}{} }()
					b.deliver(work, r)
				}()
			}
			if len(rows) == free {
				continue // there may be more due rows
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			inFlight--
			for drained := false; !drained; { // claim once for every slot freed meanwhile
				select {
				case <-done:
					inFlight--
				default:
					drained = true
				}
			}
		case <-b.wake:
		case <-ticker.C:
		}
	}
}

// queue is the deliveries table as a work queue: rows are leased, due ones
// taken in the order they fell due.
var queue = workqueue.Queue{Table: "broker_deliveries", Order: "next_attempt_at, id"}

// claimDue leases due rows to a claim token ($4) of an owner ($5).
var claimDue = queue.ClaimLeased(", claim = $4, claim_owner = $5, updated_at = $2",
	"q.id, q.trigger, q.subscriber, q.event, q.attempts, q.dead_letter, q.error_code, q.error_data")

// resumeOwn makes the pending rows claimed under owner (by a previous broker
// of that owner, which is dead) due now.
const resumeOwn = `
UPDATE broker_deliveries SET claim = NULL, next_attempt_at = $2, updated_at = $2
WHERE status = 'pending' AND claim IS NOT NULL AND (claim_owner = $1 OR starts_with(claim, $1 || '/'))`

// resume gives back the claims a previous broker of b's owner left (see
// Options.Owner). A failure is logged: those rows wait for their lease.
func (b *Broker) resume(ctx context.Context) {
	tag, err := b.pool.Exec(ctx, resumeOwn, b.owner, b.now().UTC())
	if err != nil {
		b.log.ErrorContext(ctx, "resume the deliveries claimed before a restart; they wait for their lease", "err", err)
		return
	}
	if n := tag.RowsAffected(); n > 0 {
		b.log.WarnContext(ctx, "resumed deliveries claimed before a restart", "deliveries", n)
	}
}

// claim takes up to limit due rows, hiding them from other dispatchers for
// the lease and counting the attempt.
func (b *Broker) claim(ctx context.Context, limit int) ([]claimed, error) {
	now := b.now().UTC()
	token := b.owner + "/" + events.NewID()
	rows, err := b.pool.Query(ctx, claimDue, limit, now, now.Add(b.lease), token, b.owner)
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		c := claimed{claim: token}
		err := row.Scan(&c.id, &c.trigger, &c.subscriber, &c.event, &c.attempts, &c.deadLetter, &c.errorCode, &c.errorData)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	return out, nil
}

// attempt is what one delivery attempt produced.
type attempt struct {
	status int          // HTTP status; 500 for a transport failure
	reply  *event.Event // only on 2xx
	body   []byte       // what explains a failure
	err    string       // for last_error
}

func (a attempt) ok() bool { return a.status >= 200 && a.status < 300 }

// retryable reports whether Knative's dispatcher would retry the status:
// 5xx, 404, 408, 409 and 429 (transport failures arrive here as 500).
func retryable(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}

// deliver makes one attempt for r and records its result.
func (b *Broker) deliver(ctx context.Context, r claimed) {
	log := b.log.With("delivery_id", r.id, "trigger", r.trigger, "attempt", r.attempts)
	var e event.Event
	if err := json.Unmarshal(r.event, &e); err != nil {
		b.dead(ctx, log, r, 0, "stored event cannot be decoded: "+err.Error(), r.subscriber, "?")
		return
	}
	ctx = logging.WithCorrelation(ctx, events.CorrelationOf(e))
	log = log.With("event_id", e.ID(), "event_type", e.Type())
	t, ok := b.byName[r.trigger]
	if !ok {
		b.dead(ctx, log, r, 0, "trigger "+r.trigger+" is not configured", r.subscriber, e.Type())
		return
	}
	target, send := r.subscriber, e
	if r.deadLetter {
		if t.Delivery.DeadLetterSink == "" {
			b.dead(ctx, log, r, 0, "trigger "+t.Name+" has no dead-letter sink", r.subscriber, e.Type())
			return
		}
		target, send = t.Delivery.DeadLetterSink, withErrorExtensions(e, r)
	}
	log = log.With("subscriber", target)

	actx, span := tracing.StartDelivery(ctx, e, target)
	a := b.attempt(actx, t, target, send)
	tracing.EndStatus(span, a.status, a.err)
	b.settle(ctx, log, r, t, e, target, a)
}

// settle records what attempt a of r (towards target, for event e of trigger
// t) came to: done (its reply routed), retried, handed to the dead-letter
// sink, or dead.
func (b *Broker) settle(ctx context.Context, log *slog.Logger, r claimed, t Trigger, e event.Event, target string, a attempt) {
	if a.ok() && a.reply != nil && !r.deadLetter {
		var forbidden bool
		if a, forbidden = b.judgeReply(e, target, a); forbidden {
			if a.status == http.StatusForbidden {
				b.refused("forbidden")
			}
			b.dead(ctx, log, r, a.status, a.err, target, e.Type())
			return
		}
	}
	switch {
	case a.ok():
		reply := a.reply
		if r.deadLetter {
			reply = nil // a dead-letter sink's reply goes nowhere
		}
		b.finish(ctx, log, func() error { return b.complete(ctx, r, reply) }, target, e.Type(), OutcomeDelivered)
	case retryable(a.status) && r.attempts <= t.Delivery.Retry:
		wait := t.Delivery.Backoff(r.attempts)
		log.InfoContext(ctx, "delivery failed, will retry", "status", a.status, "err", a.err, "retry_in_ms", wait.Milliseconds())
		b.finish(ctx, log, func() error { return b.reschedule(ctx, r, wait, a) }, target, e.Type(), OutcomeRetried)
	case !r.deadLetter && t.Delivery.DeadLetterSink != "":
		log.WarnContext(ctx, "delivery failed, sending to the dead-letter sink", "status", a.status, "err", a.err, "sink", t.Delivery.DeadLetterSink)
		b.finish(ctx, log, func() error { return b.handOff(ctx, r, a) }, target, e.Type(), OutcomeDeadLettered)
	default:
		b.dead(ctx, log, r, a.status, a.err, target, e.Type())
	}
}

// judgeReply checks the reply of a successful attempt a at target for event
// e. An invalid reply turns a into a 502 failure (the delivery is retried);
// a reply the event policy forbids target to send, or one of e's own type (a
// loop), makes the delivery dead at once: forbidden is true and a says why
// (403 for the policy).
func (b *Broker) judgeReply(e event.Event, target string, a attempt) (_ attempt, forbidden bool) {
	if err := checkReply(*a.reply); err != nil {
		a = attempt{status: http.StatusBadGateway, err: "invalid reply event: " + err.Error()}
		a.body = []byte(a.err)
		return a, false
	}
	switch {
	case b.policy != nil && !b.policy.Allows(b.policy.SenderOf(target), a.reply.Type()):
		reason := fmt.Sprintf("reply %s of type %s is not allowed from %s by the event policy", a.reply.ID(), a.reply.Type(), target)
		return attempt{status: http.StatusForbidden, err: reason}, true
	case a.reply.Type() == e.Type():
		reason := fmt.Sprintf("reply loop: reply %s has the type %s of the event it answers", a.reply.ID(), e.Type())
		return attempt{status: a.status, err: reason}, true
	}
	return a, false
}

// dead buries r and logs why.
func (b *Broker) dead(ctx context.Context, log *slog.Logger, r claimed, status int, reason, subscriber, typ string) {
	log.ErrorContext(ctx, "delivery failed for good; kept as dead until redriven", "status", status, "err", reason)
	b.finish(ctx, log, func() error { return b.bury(ctx, r, status, reason) }, subscriber, typ, OutcomeDead)
}

// checkReply refuses a reply the broker could not store: one that fails
// CloudEvents validation or cannot be encoded as a structured event.
func checkReply(e event.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if _, err := json.Marshal(e); err != nil {
		return err
	}
	return nil
}

// attempt calls the deliverer under the trigger's timeout and turns what it
// answered into an attempt.
func (b *Broker) attempt(ctx context.Context, t Trigger, target string, e event.Event) (a attempt) {
	ctx, cancel := context.WithTimeout(ctx, t.Delivery.Timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			a = attempt{status: http.StatusInternalServerError, err: fmt.Sprintf("dispatch error: deliverer panicked: %v", p)}
			a.body = []byte(a.err)
		}
	}()
	status, reply, err := b.d.Deliver(eventauth.WithSender(ctx, eventauth.Broker), target, e)
	switch {
	case err != nil && (status < 100 || status > 599 || status/100 == 2):
		a = attempt{status: http.StatusInternalServerError, err: "dispatch error: " + err.Error()}
		a.body = []byte(a.err)
	case err != nil:
		a = attempt{status: status, err: fmt.Sprintf("%s answered %d: %v", target, status, err), body: []byte(err.Error())}
	case status < 100 || status > 599:
		a = attempt{status: http.StatusInternalServerError, err: fmt.Sprintf("dispatch error: %s answered no valid status (%d)", target, status)}
		a.body = []byte(a.err)
	case status/100 == 2:
		a = attempt{status: status, reply: reply}
	default:
		a = attempt{status: status, err: fmt.Sprintf("%s answered %d", target, status)}
	}
	return a
}

// withErrorExtensions returns a copy of e carrying Knative's dead-letter
// extensions for r's failure.
func withErrorExtensions(e event.Event, r claimed) event.Event {
	e = e.Clone()
	code := int32(http.StatusInternalServerError)
	if r.errorCode != nil {
		code = *r.errorCode
	}
	e.SetExtension(ExtErrorCode, code)
	e.SetExtension(ExtErrorDest, r.subscriber)
	if len(r.errorData) > 0 {
		e.SetExtension(ExtErrorData, base64.StdEncoding.EncodeToString(r.errorData))
	}
	return e
}

// recordPatience bounds how long a result is retried while the database is
// unreachable; past it the delivery is retried when its claim lapses.
const recordPatience = 10 * time.Second

// finish records a delivery's result, retrying with backoff while the
// database is briefly unreachable (so that, once it is back, the delivery
// goes on at once rather than when its claim lapses), and counts the outcome
// once recorded.
func (b *Broker) finish(ctx context.Context, log *slog.Logger, record func() error, subscriber, typ, outcome string) {
	deadline := time.Now().Add(min(recordPatience, b.lease/2))
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := record()
		switch {
		case errors.Is(err, errClaimLost):
			log.WarnContext(ctx, "delivery result discarded", "err", err)
			return
		case err == nil:
			b.count(subscriber, typ, outcome)
			log.DebugContext(ctx, "delivery recorded", "outcome", outcome)
			return
		case ctx.Err() != nil || time.Now().Add(wait).After(deadline):
			log.ErrorContext(ctx, "record delivery result; the delivery will be retried when its claim lapses", "err", err)
			return
		}
		log.WarnContext(ctx, "record delivery result failed; trying again", "err", err, "retry_in_ms", wait.Milliseconds())
		time.Sleep(wait)
	}
}

// deleteDelivered removes the delivered rows whose claims still hold and
// returns their ids.
const deleteDelivered = `
DELETE FROM broker_deliveries d
USING unnest($1::bigint[], $2::text[]) AS c(id, claim)
WHERE d.id = c.id AND d.claim = c.claim
RETURNING d.id`

// completion is a delivered row waiting for complete to record it.
type completion struct {
	r     claimed
	reply *event.Event
	done  chan error
}

// complete removes a delivered row and, in the same transaction, routes the
// reply: either both happen or neither (the row is then delivered again).
// Deliveries that complete while a transaction is recording others are
// recorded together in the next one (group commit): under load one
// transaction records many deliveries instead of one each.
func (b *Broker) complete(ctx context.Context, r claimed, reply *event.Event) error {
	c := &completion{r: r, reply: reply, done: make(chan error, 1)}
	b.completing.Lock()
	b.completions = append(b.completions, c)
	if b.recording {
		b.completing.Unlock()
		return <-c.done
	}
	b.recording = true
	for len(b.completions) > 0 {
		batch := b.completions
		b.completions = nil
		b.completing.Unlock()
		b.completeAll(ctx, batch)
		b.completing.Lock()
	}
	b.recording = false
	b.completing.Unlock()
	return <-c.done
}

// completeAll records batch in one transaction and answers each completion.
func (b *Broker) completeAll(ctx context.Context, batch []*completion) {
	ids := make([]int64, len(batch))
	claims := make([]string, len(batch))
	for i, c := range batch {
		ids[i], claims[i] = c.r.id, c.r.claim
	}
	deleted := map[int64]bool{}
	var routed routing
	err := db.WithTx(ctx, b.pool, func(tx pgx.Tx) error {
		clear(deleted)
		routed = routing{}
		rows, err := tx.Query(ctx, deleteDelivered, ids, claims)
		if err != nil {
			return fmt.Errorf("delete %d delivered: %w", len(ids), err)
		}
		gone, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("delete %d delivered: %w", len(ids), err)
		}
		for _, id := range gone {
			deleted[id] = true
		}
		for _, c := range batch {
			if c.reply != nil && deleted[c.r.id] {
				if _, err := b.match(&routed, *c.reply); err != nil {
					return fmt.Errorf("route reply %s: %w", c.reply.ID(), err)
				}
			}
		}
		if err := b.store(ctx, tx, &routed); err != nil {
			return fmt.Errorf("route %d replies: %w", len(routed.ids), err)
		}
		return nil
	})
	if err == nil && len(routed.triggers) > 0 {
		b.notify()
	}
	for _, c := range batch {
		switch {
		case err != nil:
			c.done <- err
		case !deleted[c.r.id]:
			c.done <- errClaimLost
		default:
			c.done <- nil
		}
	}
}

const rescheduleFailed = `
UPDATE broker_deliveries
SET next_attempt_at = $3, claim = NULL, last_status = $4, last_error = $5, updated_at = $6
WHERE id = $1 AND claim = $2`

// reschedule makes r due again after wait.
func (b *Broker) reschedule(ctx context.Context, r claimed, wait time.Duration, a attempt) error {
	now := b.now().UTC()
	return b.update(ctx, r, rescheduleFailed, now.Add(wait), a.status, a.err, now)
}

const handOffFailed = `
UPDATE broker_deliveries
SET dead_letter = true, error_code = $3, error_data = $4, attempts = 0, next_attempt_at = $5,
    claim = NULL, last_status = $3, last_error = $6, updated_at = $5
WHERE id = $1 AND claim = $2`

// handOff points r at its trigger's dead-letter sink, due at once, keeping
// what the sink needs for Knative's error extensions.
func (b *Broker) handOff(ctx context.Context, r claimed, a attempt) error {
	body := a.body
	if len(body) > MaxErrorData {
		body = body[:MaxErrorData]
	}
	if err := b.update(ctx, r, handOffFailed, a.status, body, b.now().UTC(), a.err); err != nil {
		return err
	}
	b.notify()
	return nil
}

const buryFailed = `
UPDATE broker_deliveries
SET status = 'dead', claim = NULL, last_status = $3, last_error = $4, updated_at = $5
WHERE id = $1 AND claim = $2`

// bury marks r dead; only Redrive brings it back.
func (b *Broker) bury(ctx context.Context, r claimed, status int, reason string) error {
	var st *int
	if status != 0 {
		st = &status
	}
	return b.update(ctx, r, buryFailed, st, reason, b.now().UTC())
}

// update runs a result statement on r's row while r's claim still holds.
func (b *Broker) update(ctx context.Context, r claimed, sql string, args ...any) error {
	tag, err := b.pool.Exec(ctx, sql, append([]any{r.id, r.claim}, args...)...)
	if err != nil {
		return fmt.Errorf("update delivery %d: %w", r.id, err)
	}
	if tag.RowsAffected() == 0 {
		return errClaimLost
	}
	return nil
}
