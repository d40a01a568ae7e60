package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/tracing"
)

// Direct delivery (Options.DirectWait > 0). Send attempts each delivery at
// once, in the sender's call, and writes to the database only what did not
// simply succeed:
//
//   - delivered (2xx, no reply): nothing is stored;
//   - delivered with a valid reply: the reply is delivered the same way,
//     within what is left of the wait;
//   - failed, or answered with a reply the broker refuses: the delivery is
//     stored with this attempt counted and settled as the dispatcher settles
//     its own attempts (retried with the trigger's backoff, handed to the
//     dead-letter sink, or dead);
//   - not finished within DirectWait (or the sender gave up): the delivery
//     is stored claimed by this broker, and the attempt's result is recorded
//     when it comes; if this broker dies first, its claim is given back as
//     for any delivery it held.
//
// Send returns nil only once every delivery of the event, and of the replies
// it led to, succeeded or is stored. When storing fails it returns an
// Unavailable error and the sender sends the event again: the subscribers
// that already had it get it twice, which at-least-once delivery allows and
// their inboxes absorb, and a command's handler answers a repeated command
// with its reply again. Nothing accepted is lost, and a purchase's events
// cost no broker writes on the happy path.

// maxReplyDepth bounds the chain of replies delivered directly; the reply
// of the delivery at this depth is stored and dispatched instead.
const maxReplyDepth = 4

// insertClaimed stores a delivery whose first attempt this broker made or is
// making, claimed by it until the lease lapses.
const insertClaimed = `
INSERT INTO broker_deliveries (trigger, subscriber, event, attempts, next_attempt_at, claim, claim_owner, created_at, updated_at)
VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $7)
RETURNING id`

// encoded is an event and its structured encoding, made at most once, when
// a delivery of it has to be stored.
type encoded struct {
	e    event.Event
	once sync.Once
	doc  []byte
	err  error
}

func (x *encoded) get() ([]byte, error) {
	x.once.Do(func() { x.doc, x.err = json.Marshal(x.e) })
	return x.doc, x.err
}

// matching returns the triggers e matches.
func (b *Broker) matching(e event.Event) []Trigger {
	var ts []Trigger
	for _, t := range b.triggers {
		if t.Matches(e) {
			ts = append(ts, t)
		}
	}
	return ts
}

// sendDirect delivers the events of evs at the indices admitted directly,
// at most Workers deliveries in flight, and sets errs for those it could
// neither deliver nor store.
func (b *Broker) sendDirect(ctx context.Context, evs []event.Event, admitted []int, errs []error) {
	deadline := time.Now().Add(b.direct)
	sem := make(chan struct{}, b.workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, i := range admitted {
		e := evs[i]
		ts := b.matching(e)
		if len(ts) == 0 {
			b.log.DebugContext(ctx, "event matches no trigger, dropped", "event_id", e.ID(), "event_type", e.Type())
			continue
		}
		enc := &encoded{e: e}
		for _, t := range ts {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := b.deliverDirect(ctx, enc, t, deadline, 0); err != nil {
					mu.Lock()
					if errs[i] == nil {
						errs[i] = err
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
}

// deliverDirect makes the first attempt of the delivery of enc.e to t and
// stores the delivery unless it simply succeeded by deadline (see above).
// depth counts the replies that led to enc.e.
func (b *Broker) deliverDirect(ctx context.Context, enc *encoded, t Trigger, deadline time.Time, depth int) error {
	e, target := enc.e, t.Subscriber
	// The attempt is not the sender's: it goes on when the sender's call
	// ends or the wait lapses, and its result is recorded then.
	work := logging.WithCorrelation(context.WithoutCancel(ctx), events.CorrelationOf(e))
	// Only a delivery that is stored logs; one that succeeded at once, the
	// usual case, builds no logger.
	log := func(id int64) *slog.Logger {
		return b.log.With("trigger", t.Name, "event_id", e.ID(), "event_type", e.Type(), "subscriber", target, "delivery_id", id, "attempt", 1)
	}
	done := make(chan attempt, 1)
	go func() {
		actx, span := tracing.StartDelivery(work, e, target)
		a := b.attempt(actx, t, target, e)
		tracing.EndStatus(span, a.status, a.err)
		done <- a
	}()
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	var a attempt
	select {
	case a = <-done:
	case <-wait.C:
	case <-ctx.Done():
	}
	if a.status == 0 { // still running: keep it as a claimed delivery
		r, err := b.storeClaimed(work, enc, t)
		if err != nil {
			return err
		}
		l := log(r.id)
		l.InfoContext(ctx, "delivery still running after the direct wait; stored")
		go func() { b.settle(work, l, r, t, e, target, <-done) }()
		return nil
	}
	if a.ok() && a.reply == nil {
		b.count(target, e.Type(), OutcomeDelivered)
		return nil
	}
	if a.ok() && depth < maxReplyDepth {
		if judged, forbidden := b.judgeReply(e, target, a); !forbidden && judged.ok() {
			b.count(target, e.Type(), OutcomeDelivered)
			return b.deliverReply(ctx, *a.reply, deadline, depth+1)
		}
	}
	r, err := b.storeClaimed(work, enc, t)
	if err != nil {
		return err
	}
	b.settle(work, log(r.id), r, t, e, target, a)
	return nil
}

// deliverReply delivers a subscriber's reply directly to the triggers it
// matches, concurrently.
func (b *Broker) deliverReply(ctx context.Context, reply event.Event, deadline time.Time, depth int) error {
	ts := b.matching(reply)
	if len(ts) == 0 {
		b.log.DebugContext(ctx, "reply matches no trigger, dropped", "event_id", reply.ID(), "event_type", reply.Type())
		return nil
	}
	enc := &encoded{e: reply}
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for j, t := range ts {
		wg.Go(func() { errs[j] = b.deliverDirect(ctx, enc, t, deadline, depth) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// storeClaimed stores the delivery of enc.e to t with one attempt counted,
// claimed by this broker.
func (b *Broker) storeClaimed(ctx context.Context, enc *encoded, t Trigger) (claimed, error) {
	doc, err := enc.get()
	if err != nil {
		return claimed{}, apierr.Wrap(apierr.Invalid, err, "event %s cannot be encoded: %v", enc.e.ID(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, recordPatience)
	defer cancel()
	now := b.now().UTC()
	r := claimed{trigger: t.Name, subscriber: t.Subscriber, event: doc, attempts: 1, claim: b.owner + "/" + events.NewID()}
	if err := b.pool.QueryRow(ctx, insertClaimed, t.Name, t.Subscriber, doc, now.Add(b.lease), r.claim, b.owner, now).Scan(&r.id); err != nil {
		return claimed{}, apierr.Wrap(apierr.Unavailable, fmt.Errorf("store delivery of event %s to %s: %w", enc.e.ID(), t.Name, err), "the broker cannot store the event")
	}
	return r, nil
}
