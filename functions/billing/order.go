package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Order statuses: pending → paid → active, or failed.
const (
	OrderPending   = "pending"
	OrderPaid      = "paid"
	OrderActive    = "active"
	OrderFailed    = "failed"
	OrderCancelled = "cancelled"
)

// Order is a purchase of a plan, with the terms copied from the plan when it
// was placed and, when read on its own, its saga.
type Order struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	PlanID string `json:"plan_id"`
	// State is pending, active, failed or cancelled; the name devices,
	// apps and every other resource use.
	State string `json:"state"`
	// Status is State under its former name, kept for clients written
	// against it; it goes in the next API version.
	Status         string    `json:"status"`
	Price          int64     `json:"price"`
	Currency       string    `json:"currency"`
	PeriodDays     int       `json:"period_days"`
	Quota          Quota     `json:"quota"`
	FailureCode    string    `json:"failure_code,omitempty"`
	FailureReason  string    `json:"failure_reason,omitempty"`
	SubscriptionID *string   `json:"subscription_id,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	Saga           *Saga     `json:"saga,omitempty"`
}

// Saga is the state of an order's purchase saga.
type Saga struct {
	Step          string         `json:"step"`
	Status        string         `json:"status"`
	Deadline      time.Time      `json:"deadline"`
	Compensations []string       `json:"compensations"`
	History       []HistoryEntry `json:"history"`
}

// HistoryEntry is one thing that happened in a saga.
type HistoryEntry struct {
	Step    string    `json:"step"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at"`
}

// OrderRequest is the body of POST /orders.
type OrderRequest struct {
	PlanID string `json:"plan_id"`
}

// hash identifies the request for the Idempotency-Key check.
func (r OrderRequest) hash() string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

const orderColumns = `o.id::text, o.user_id::text, o.plan_id, o.status, o.status, o.price, o.currency, o.period_days, o.quota,
	o.failure_code, o.failure_reason, o.subscription_id::text, o.created_at, o.updated_at`

func scanOrder(row pgx.Row) (Order, error) {
	var o Order
	err := row.Scan(&o.ID, &o.UserID, &o.PlanID, &o.State, &o.Status, &o.Price, &o.Currency, &o.PeriodDays, &o.Quota,
		&o.FailureCode, &o.FailureReason, &o.SubscriptionID, &o.CreatedAt, &o.UpdatedAt)
	return o, err
}

// PlaceOrder starts the purchase saga of req for userID under key (the
// Idempotency-Key): in one transaction it checks the plan is active, records
// the order with the plan's terms and its saga with its deadline, and takes
// the saga's debit step: the order comes back paid with the grant requested
// from the user context, or failed with insufficient_funds (the balance is
// left as it was). created is false when key
// was used before with the same request: that order is returned as it is
// now. The same key with another request is apierr Unprocessable; an
// unknown or inactive plan is apierr Invalid.
func (s *Service) PlaceOrder(ctx context.Context, userID, key string, req OrderRequest) (o Order, created bool, err error) {
	var p validate.Problems
	p.Check(key != "" && len(key) <= 128 && validate.NoControlChars(key), "Idempotency-Key", "header is required: 1 to 128 characters")
	p.Check(req.PlanID != "", "plan_id", "is required")
	if err := p.Err(); err != nil {
		return Order{}, false, err
	}
	hash := req.hash()
	id := events.NewID()
	var sg *sagaState
	err = db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		created = false
		o, err = s.orderByKey(ctx, tx, userID, key, hash)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		plan, err := scanPlan(tx.QueryRow(ctx, `SELECT `+planColumns+` FROM plans WHERE id = $1 FOR SHARE`, req.PlanID))
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !plan.Active) {
			return apierr.New(apierr.Invalid, "plan_id: no active plan %q", req.PlanID)
		}
		if err != nil {
			return fmt.Errorf("read plan %s: %w", req.PlanID, err)
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO orders (id, user_id, plan_id, price, currency, period_days, quota, status, idempotency_key, request_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)
ON CONFLICT (user_id, idempotency_key) DO NOTHING`,
			id, userID, plan.ID, plan.Price, plan.Currency, plan.PeriodDays, plan.Quota, key, hash)
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		if tag.RowsAffected() == 0 { // a concurrent request with this key committed first
			o, err = s.orderByKey(ctx, tx, userID, key, hash)
			return err
		}
		now := s.now().UTC()
		hist, _ := json.Marshal([]HistoryEntry{{Step: "order", Outcome: "created", Detail: "plan " + plan.ID, At: now}})
		if _, err := tx.Exec(ctx, `INSERT INTO sagas (order_id, step, status, deadline, history) VALUES ($1, 'debit', 'running', $2, $3)`,
			id, now.Add(s.cfg.SagaDeadline), hist); err != nil {
			return fmt.Errorf("insert saga %s: %w", id, err)
		}
		// The saga's first step is this context's own: it runs here rather
		// than behind a command through the broker, on the rows this
		// transaction just wrote (and so holds).
		sg = &sagaState{orderID: id, step: StepDebit, status: SagaRunning, deadline: now.Add(s.cfg.SagaDeadline),
			userID: userID, planID: plan.ID, price: plan.Price, periodDays: plan.PeriodDays, quota: plan.Quota,
			compensations: []string{}, stepSince: now, lockedStep: StepDebit}
		if err := s.debit(ctx, tx, sg); err != nil {
			return err
		}
		created = true
		o, err = scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders o WHERE o.id = $1`, id))
		return err
	})
	if err != nil {
		return Order{}, false, err
	}
	if created {
		s.log.InfoContext(ctx, "order placed", "order_id", o.ID, "user_id", userID, "plan_id", o.PlanID, "price", o.Price, "status", o.Status)
		s.observeStep(sg)
		s.committed(StepOrderCreated)
		s.committed(StepDebited)
	}
	return o, created, nil
}

// orderByKey returns userID's order placed with key, or pgx.ErrNoRows; a
// different request under the same key is apierr Unprocessable.
func (s *Service) orderByKey(ctx context.Context, tx pgx.Tx, userID, key, hash string) (Order, error) {
	var stored string
	o, err := func() (Order, error) {
		var o Order
		err := tx.QueryRow(ctx, `SELECT `+orderColumns+`, o.request_hash FROM orders o WHERE o.user_id = $1 AND o.idempotency_key = $2`,
			userID, key).Scan(&o.ID, &o.UserID, &o.PlanID, &o.State, &o.Status, &o.Price, &o.Currency, &o.PeriodDays, &o.Quota,
			&o.FailureCode, &o.FailureReason, &o.SubscriptionID, &o.CreatedAt, &o.UpdatedAt, &stored)
		return o, err
	}()
	if err != nil {
		return Order{}, err
	}
	if stored != hash {
		return Order{}, apierr.New(apierr.Unprocessable, "Idempotency-Key was used with another request")
	}
	return o, nil
}

// Order returns userID's order id with its saga; another user's order, or
// none, is apierr NotFound.
func (s *Service) Order(ctx context.Context, userID, id string) (Order, error) {
	if !validate.UUID(id) {
		return Order{}, apierr.New(apierr.NotFound, "no order %q", id)
	}
	var sg Saga
	var hist []byte
	o, err := func() (Order, error) {
		var o Order
		err := s.pool.QueryRow(ctx, `SELECT `+orderColumns+`, s.step, s.status, s.deadline, s.compensations, s.history
FROM orders o JOIN sagas s ON s.order_id = o.id WHERE o.id = $1 AND o.user_id = $2`, id, userID).
			Scan(&o.ID, &o.UserID, &o.PlanID, &o.State, &o.Status, &o.Price, &o.Currency, &o.PeriodDays, &o.Quota,
				&o.FailureCode, &o.FailureReason, &o.SubscriptionID, &o.CreatedAt, &o.UpdatedAt,
				&sg.Step, &sg.Status, &sg.Deadline, &sg.Compensations, &hist)
		return o, err
	}()
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, apierr.New(apierr.NotFound, "no order %q", id)
	}
	if err != nil {
		return Order{}, fmt.Errorf("read order %s: %w", id, err)
	}
	if err := json.Unmarshal(hist, &sg.History); err != nil {
		return Order{}, fmt.Errorf("decode history of saga %s: %w", id, err)
	}
	o.Saga = &sg
	return o, nil
}

// OrdersPage is one page of a user's orders, newest first.
type OrdersPage struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// Orders returns a page of userID's orders, newest first: limit (1–MaxPageSize,
// 0 = DefaultPageSize) orders after cursor (a next_cursor).
func (s *Service) Orders(ctx context.Context, userID string, limit int, cursor string) (OrdersPage, error) {
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return OrdersPage{}, apierr.New(apierr.Invalid, "limit: must be 1 to %d", MaxPageSize)
	}
	if cursor != "" && !validate.UUID(cursor) {
		return OrdersPage{}, apierr.New(apierr.Invalid, "cursor: not a cursor this API returned")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders o
WHERE o.user_id = $1 AND ($2 = '' OR (o.created_at, o.id) < (SELECT created_at, id FROM orders WHERE id = NULLIF($2, '')::uuid))
ORDER BY o.created_at DESC, o.id DESC LIMIT $3`, userID, cursor, limit+1)
	if err != nil {
		return OrdersPage{}, fmt.Errorf("list orders of %s: %w", userID, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Order, error) { return scanOrder(r) })
	if err != nil {
		return OrdersPage{}, fmt.Errorf("list orders of %s: %w", userID, err)
	}
	page := OrdersPage{Orders: list}
	if len(list) > limit {
		page.Orders = list[:limit]
		page.NextCursor = list[limit-1].ID
	}
	if page.Orders == nil {
		page.Orders = []Order{}
	}
	return page, nil
}
