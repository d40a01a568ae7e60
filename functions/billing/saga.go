package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// The purchase saga, one row per order in sagas:
//
//	step debit   (running)  ── balance covers the price ──────────────────► step grant (compensations: refund, revoke)
//	                        ── balance does not cover it ─────────────────► failed insufficient_funds (nothing moved)
//	step grant   (running)  ── quota.granted: subscription created/extended ─► done, completed (order active)
//	                        ── quota.grant.refused ─────────────────────────► failed grant_refused (refund)
//	any running step past its deadline (sweeper) ─────────────────────────► failed timeout (revoke, then refund)
//
// A compensation is registered only once its step succeeded or may have
// (revoke is registered when the grant is requested), and they run in
// reverse order. The debit step runs in the transaction that places the
// order (the step is billing's own, so it needs no command through the
// broker); every later transition locks the saga and its order, claims the
// event in the inbox, and writes its next command or fact to the outbox in
// the same transaction: a crash at any point resumes from the last commit.
const (
	StepDebit    = "debit"
	StepGrant    = "grant"
	StepActivate = "activate"
	StepDone     = "done"

	SagaRunning   = "running"
	SagaCompleted = "completed"
	SagaFailed    = "failed"

	CompensateRefund = "refund"
	CompensateRevoke = "revoke"
)

// Failure codes of an order.
const (
	FailInsufficientFunds = "insufficient_funds"
	FailGrantRefused      = "grant_refused"
	FailTimeout           = "timeout"
)

// sagaState is a locked saga with its order's terms.
type sagaState struct {
	orderID       string
	step, status  string
	deadline      time.Time
	compensations []string
	userID        string
	planID        string
	price         int64
	periodDays    int
	quota         Quota

	history []HistoryEntry // entries to append

	// stepSince is when the saga reached the step it was locked at (its
	// row's updated_at), and lockedStep that step.
	stepSince  time.Time
	lockedStep string
	failure    string // the failure code, once failed
}

func (sg *sagaState) note(at time.Time, step, outcome, detail string) {
	sg.history = append(sg.history, HistoryEntry{Step: step, Outcome: outcome, Detail: detail, At: at})
}

const lockSaga = `
SELECT s.step, s.status, s.deadline, s.compensations, o.user_id::text, o.plan_id, o.price, o.period_days, o.quota, s.updated_at
FROM sagas s JOIN orders o ON o.id = s.order_id
WHERE s.order_id = $1
FOR UPDATE OF s, o`

// lockSaga locks the saga of orderID and its order; pgx.ErrNoRows when there is none.
func (s *Service) lockSaga(ctx context.Context, tx pgx.Tx, orderID string) (*sagaState, error) {
	sg := &sagaState{orderID: orderID}
	err := tx.QueryRow(ctx, lockSaga, orderID).Scan(&sg.step, &sg.status, &sg.deadline, &sg.compensations,
		&sg.userID, &sg.planID, &sg.price, &sg.periodDays, &sg.quota, &sg.stepSince)
	if err != nil {
		return nil, err
	}
	sg.lockedStep = sg.step
	return sg, nil
}

// save writes the saga's step, status, compensations and new history.
func (s *Service) save(ctx context.Context, tx pgx.Tx, sg *sagaState) error {
	hist, err := json.Marshal(sg.history)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
UPDATE sagas SET step = $2, status = $3, compensations = $4, history = history || $5::jsonb, updated_at = now()
WHERE order_id = $1`, sg.orderID, sg.step, sg.status, sg.compensations, hist)
	if err != nil {
		return fmt.Errorf("save saga %s: %w", sg.orderID, err)
	}
	sg.history = nil
	return nil
}

func (s *Service) setOrder(ctx context.Context, tx pgx.Tx, orderID, status, code, reason string, subscriptionID *string) error {
	_, err := tx.Exec(ctx, `
UPDATE orders SET status = $2, failure_code = $3, failure_reason = $4, subscription_id = COALESCE($5::uuid, subscription_id),
       updated_at = now()
WHERE id = $1`, orderID, status, code, reason, subscriptionID)
	if err != nil {
		return fmt.Errorf("set order %s %s: %w", orderID, status, err)
	}
	return nil
}

// Outcome says what handling one saga event did.
type Outcome string

// Outcomes of the saga handlers.
const (
	OutcomeApplied   Outcome = "applied"   // the event moved the saga
	OutcomeDuplicate Outcome = "duplicate" // the inbox had it: nothing done
	OutcomeIgnored   Outcome = "ignored"   // a step the saga already passed, or no such saga
)

// withSaga runs fn in one transaction with e's inbox claim and the saga of
// orderID locked; fn sets the outcome. A duplicate event or an unknown saga
// does nothing (OutcomeDuplicate, OutcomeIgnored).
func (s *Service) withSaga(ctx context.Context, e event.Event, orderID string, fn func(tx pgx.Tx, sg *sagaState, out *Outcome) error) (Outcome, error) {
	var (
		out    Outcome
		locked *sagaState
	)
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		locked = nil
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil || !first {
			out = OutcomeDuplicate
			return err
		}
		sg, err := s.lockSaga(ctx, tx, orderID)
		if errors.Is(err, pgx.ErrNoRows) {
			out = OutcomeIgnored
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock saga %s: %w", orderID, err)
		}
		locked = sg
		return fn(tx, sg, &out)
	})
	if err == nil && locked != nil {
		s.observeStep(locked)
	}
	return out, err
}

// SagaPurchase names the purchase saga in the metrics.
const SagaPurchase = "purchase"

// observeStep reports, once its transaction committed, the step sg left
// (how long it took and how it ended) and the saga's outcome when it ended.
func (s *Service) observeStep(sg *sagaState) {
	if s.metrics == nil || (sg.step == sg.lockedStep && sg.status == SagaRunning) {
		return
	}
	outcome := "done"
	if sg.status == SagaFailed {
		outcome = "failed"
	}
	took := s.now().Sub(sg.stepSince).Seconds()
	s.metrics.SagaStepSeconds.WithLabelValues(SagaPurchase, sg.lockedStep, outcome).Observe(max(took, 0))
	switch sg.status {
	case SagaCompleted:
		s.metrics.SagaOutcomes.WithLabelValues(SagaPurchase, SagaCompleted).Inc()
	case SagaFailed:
		s.metrics.SagaOutcomes.WithLabelValues(SagaPurchase, SagaFailed+":"+sg.failure).Inc()
	}
}

// HandleDebit applies the saga's debit step for the command e (data cmd).
// Orders take their debit when they are placed (PlaceOrder); the command is
// still handled for a saga left at step debit, such as one placed by an
// earlier version with the command still on its way. A command for a saga
// past this step, or a duplicate, changes nothing.
func (s *Service) HandleDebit(ctx context.Context, e event.Event, cmd billingevents.DebitRequested) (Outcome, error) {
	if !validate.UUID(cmd.OrderID) {
		return "", function.Permanent(fmt.Errorf("debit command %s: order_id %q is not an order id", e.ID(), cmd.OrderID))
	}
	out, err := s.withSaga(ctx, e, cmd.OrderID, func(tx pgx.Tx, sg *sagaState, out *Outcome) error {
		if sg.status != SagaRunning || sg.step != StepDebit {
			*out = OutcomeIgnored
			return nil
		}
		*out = OutcomeApplied
		return s.debit(ctx, tx, sg)
	})
	if err != nil {
		return "", err
	}
	if out == OutcomeApplied {
		s.committed(StepDebited)
	}
	return out, nil
}

// debit is the saga's debit step, on sg locked at step debit: with the
// balance row locked it takes the price from the balance and requests the
// grant, or ends the order failed with insufficient_funds when the balance
// does not cover it.
func (s *Service) debit(ctx context.Context, tx pgx.Tx, sg *sagaState) error {
	now := s.now().UTC()
	if sg.price > 0 {
		entry, err := s.post(ctx, tx, posting{userID: sg.userID, amount: -sg.price, kind: KindDebit,
			reference: "order:" + sg.orderID, reason: "plan " + sg.planID})
		if errors.Is(err, errInsufficient) {
			sg.note(now, StepDebit, "refused", FailInsufficientFunds)
			return s.fail(ctx, tx, sg, FailInsufficientFunds, "the balance does not cover the price", false)
		}
		if err != nil {
			return err
		}
		sg.note(now, StepDebit, "done", fmt.Sprintf("ledger entry %d, balance %d", entry.ID, entry.BalanceAfter))
	} else {
		sg.note(now, StepDebit, "done", "free plan: nothing to debit")
	}
	sg.compensations = append(sg.compensations, CompensateRefund)
	if err := s.setOrder(ctx, tx, sg.orderID, OrderPaid, "", "", nil); err != nil {
		return err
	}
	cmd, err := newEvent(ctx, userevents.EventQuotaGrantRequested, SourceSaga, sg.orderID, sg.orderID, userevents.QuotaGrantRequested{
		SchemaVersion: 1, GrantID: sg.orderID, UserID: sg.userID, PlanID: sg.planID, Limits: userevents.Limits(sg.quota)})
	if err != nil {
		return err
	}
	if err := outbox.Add(ctx, tx, cmd); err != nil {
		return err
	}
	sg.step = StepGrant
	sg.compensations = append(sg.compensations, CompensateRevoke)
	sg.note(now, StepGrant, "requested", "")
	return s.save(ctx, tx, sg)
}

// HandleQuotaReply applies a reply of the user context (typ granted,
// grant.refused or revoked; data r) to the saga of the order r.GrantID:
// granted at step grant activates the order, refused at step grant fails it
// with grant_refused after its compensations; a reply to a saga that has not
// reached step grant yet is function.NotYet (the broker retries it); a reply
// for a step the saga has passed, for a grant that is no saga's (a
// subscription's revoke, say) or a duplicate changes nothing.
func (s *Service) HandleQuotaReply(ctx context.Context, e event.Event, typ string, r userevents.QuotaReply) (Outcome, error) {
	if !validate.UUID(r.GrantID) {
		s.log.WarnContext(ctx, "quota reply for a grant that is no order", "grant_id", r.GrantID, "event_type", typ)
		return OutcomeIgnored, nil
	}
	if typ == userevents.EventQuotaGranted {
		s.committed(StepGrantReceived)
	}
	if typ == userevents.EventQuotaRevoked {
		// A revoke confirms a compensation of a failed saga and nothing
		// else: every renewal's revoke of the grant it replaced (a
		// completed saga's) changes nothing. Completed and failed are
		// final, so the status read without a lock tells, and such a reply
		// takes no lock and writes no inbox row.
		var status string
		err := s.pool.QueryRow(ctx, `SELECT status FROM sagas WHERE order_id = $1`, r.GrantID).Scan(&status)
		switch {
		case errors.Is(err, pgx.ErrNoRows), err == nil && status != SagaFailed:
			return OutcomeIgnored, nil
		case err != nil:
			return "", fmt.Errorf("read saga %s: %w", r.GrantID, err)
		}
	}
	out, err := s.withSaga(ctx, e, r.GrantID, func(tx pgx.Tx, sg *sagaState, out *Outcome) error {
		now := s.now().UTC()
		switch {
		case typ == userevents.EventQuotaRevoked:
			// Only a failed saga gets here (see above): a revoke it did not ask for changes nothing.
			if !slices.Contains(sg.compensations, CompensateRevoke) {
				*out = OutcomeIgnored
				return nil
			}
			*out = OutcomeApplied
			sg.note(now, "compensate", "revoke confirmed", "")
			return s.save(ctx, tx, sg)
		case sg.status == SagaRunning && sg.step == StepDebit:
			// Rolled back by the caller; the broker delivers it again later.
			return function.NotYet(fmt.Errorf("saga %s is at step debit, not grant", sg.orderID))
		case sg.status != SagaRunning || sg.step != StepGrant:
			*out = OutcomeIgnored
			return nil
		case typ == userevents.EventQuotaGranted:
			*out = OutcomeApplied
			sg.note(now, StepGrant, "granted", "")
			return s.activate(ctx, tx, sg, now)
		case typ == userevents.EventQuotaGrantRefused:
			*out = OutcomeApplied
			sg.note(now, StepGrant, "refused", r.Reason)
			msg := "the user context refused the quota grant"
			if r.Reason != "" {
				msg += ": " + r.Reason
			}
			return s.fail(ctx, tx, sg, FailGrantRefused, msg, false)
		}
		return function.Permanent(fmt.Errorf("%s is not a quota reply", typ))
	})
	if err != nil {
		return "", err
	}
	if out == OutcomeApplied {
		switch typ {
		case userevents.EventQuotaGranted:
			s.committed(StepActivated)
		case userevents.EventQuotaGrantRefused:
			s.committed(StepCompensated)
		}
	}
	return out, nil
}

// activate creates or extends the user's subscription to the plan (expires_at
// = the later of now and its current expiry, plus the period), marks the
// order active and announces it. An extended subscription's previous grant is
// revoked: the new grant replaces it, so a plan's quota counts once.
func (s *Service) activate(ctx context.Context, tx pgx.Tx, sg *sagaState, now time.Time) error {
	period := time.Duration(sg.periodDays) * 24 * time.Hour
	var (
		subID    string
		current  time.Time
		oldGrant string
	)
	err := tx.QueryRow(ctx, `SELECT id::text, expires_at, grant_id FROM subscriptions
WHERE user_id = $1 AND plan_id = $2 AND status = 'active' FOR UPDATE`, sg.userID, sg.planID).Scan(&subID, &current, &oldGrant)
	var expires time.Time
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		subID = events.NewID()
		expires = now.Add(period)
		if _, err := tx.Exec(ctx, `INSERT INTO subscriptions (id, user_id, plan_id, status, grant_id, started_at, expires_at)
VALUES ($1, $2, $3, 'active', $4, $5, $6)`, subID, sg.userID, sg.planID, sg.orderID, now, expires); err != nil {
			return fmt.Errorf("create subscription for order %s: %w", sg.orderID, err)
		}
		sg.note(now, StepActivate, "done", "subscription "+subID+" created")
	case err != nil:
		return fmt.Errorf("read subscription of %s to %s: %w", sg.userID, sg.planID, err)
	default:
		expires = later(now, current).Add(period)
		if _, err := tx.Exec(ctx, `UPDATE subscriptions SET expires_at = $2, grant_id = $3, updated_at = now() WHERE id = $1`,
			subID, expires, sg.orderID); err != nil {
			return fmt.Errorf("extend subscription %s: %w", subID, err)
		}
		sg.note(now, StepActivate, "done", "subscription "+subID+" extended")
		if oldGrant != sg.orderID {
			revoke, err := newEvent(ctx, userevents.EventQuotaRevokeRequested, SourceSaga, oldGrant, sg.orderID,
				userevents.QuotaRevokeRequested{SchemaVersion: 1, GrantID: oldGrant, UserID: sg.userID})
			if err != nil {
				return err
			}
			if err := outbox.Add(ctx, tx, revoke); err != nil {
				return err
			}
		}
	}
	if err := s.setOrder(ctx, tx, sg.orderID, OrderActive, "", "", &subID); err != nil {
		return err
	}
	fact, err := newEvent(ctx, billingevents.EventOrderActivated, SourceSaga, sg.orderID, sg.orderID, billingevents.OrderActivatedData{
		SchemaVersion: 1, OrderID: sg.orderID, UserID: sg.userID, PlanID: sg.planID, SubscriptionID: subID, ExpiresAt: expires})
	if err != nil {
		return err
	}
	if err := outbox.Add(ctx, tx, fact); err != nil {
		return err
	}
	sg.step, sg.status = StepDone, SagaCompleted
	return s.save(ctx, tx, sg)
}

// fail runs sg's compensations in reverse order (revoke only when
// mayBeGranted), marks the order failed with code and announces it.
func (s *Service) fail(ctx context.Context, tx pgx.Tx, sg *sagaState, code, msg string, mayBeGranted bool) error {
	now := s.now().UTC()
	sg.failure = code
	for _, c := range slices.Backward(sg.compensations) {
		switch c {
		case CompensateRevoke:
			if !mayBeGranted {
				continue
			}
			revoke, err := newEvent(ctx, userevents.EventQuotaRevokeRequested, SourceSaga, sg.orderID, sg.orderID,
				userevents.QuotaRevokeRequested{SchemaVersion: 1, GrantID: sg.orderID, UserID: sg.userID})
			if err != nil {
				return err
			}
			if err := outbox.Add(ctx, tx, revoke); err != nil {
				return err
			}
			sg.note(now, "compensate", "revoke requested", "")
		case CompensateRefund:
			if sg.price == 0 {
				continue
			}
			entry, err := s.post(ctx, tx, posting{userID: sg.userID, amount: sg.price, kind: KindRefund,
				reference: "order:" + sg.orderID, reason: code})
			if err != nil {
				return err
			}
			sg.note(now, "compensate", "refunded", fmt.Sprintf("ledger entry %d, balance %d", entry.ID, entry.BalanceAfter))
		}
	}
	if !mayBeGranted {
		sg.compensations = slices.DeleteFunc(sg.compensations, func(c string) bool { return c == CompensateRevoke })
	}
	if err := s.setOrder(ctx, tx, sg.orderID, OrderFailed, code, msg, nil); err != nil {
		return err
	}
	fact, err := newEvent(ctx, billingevents.EventOrderFailed, SourceSaga, sg.orderID, sg.orderID, billingevents.OrderFailedData{
		SchemaVersion: 1, OrderID: sg.orderID, UserID: sg.userID, PlanID: sg.planID, Reason: code, Message: msg})
	if err != nil {
		return err
	}
	if err := outbox.Add(ctx, tx, fact); err != nil {
		return err
	}
	sg.status = SagaFailed
	sg.note(now, sg.step, "failed", code)
	s.log.InfoContext(ctx, "order failed", "order_id", sg.orderID, "user_id", sg.userID, "reason", code)
	return s.save(ctx, tx, sg)
}

// SweepSagas fails every running saga whose deadline has passed, with code
// timeout, running its compensations (the revoke included: a grant may be
// on its way, and the user context's tombstone makes a late grant refused).
// It returns how many it failed. Safe to run concurrently with itself and
// with the saga's handlers: each saga is handled under its row lock.
func (s *Service) SweepSagas(ctx context.Context) (int, error) {
	n := 0
	for {
		now := s.now().UTC()
		rows, err := s.pool.Query(ctx, `SELECT order_id::text FROM sagas WHERE status = 'running' AND deadline < $1
ORDER BY deadline LIMIT 100`, now)
		if err != nil {
			return n, fmt.Errorf("list overdue sagas: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return n, fmt.Errorf("list overdue sagas: %w", err)
		}
		swept := 0
		for _, id := range ids {
			var done *sagaState
			err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
				done = nil
				sg, err := s.lockSaga(ctx, tx, id)
				if err != nil {
					return err
				}
				if sg.status != SagaRunning || !sg.deadline.Before(now) {
					return nil
				}
				done = sg
				sg.note(now, sg.step, "timed out", "deadline "+sg.deadline.Format(time.RFC3339))
				return s.fail(ctx, tx, sg, FailTimeout, "no answer at step "+sg.step+" before the deadline", true)
			})
			if err != nil {
				return n, fmt.Errorf("sweep saga %s: %w", id, err)
			}
			if done != nil {
				n++
				swept++
				s.observeStep(done)
				s.committed(StepSweptOne)
			}
		}
		if len(ids) < 100 || swept == 0 {
			return n, nil
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
