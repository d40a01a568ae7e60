package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Kinds of ledger entry.
const (
	KindCredit = "credit" // an administrator's credit (operator set)
	KindDebit  = "debit"  // an order's price
	KindRefund = "refund" // an order's price given back by its saga's compensation
	KindTopUp  = "topup"  // a payment provider's top-up
	KindUsage  = "usage"  // metered device usage
)

// Entry is one ledger entry: the signed amount and the balance before and
// after it. Seq numbers the entries of one user from 1 without gaps.
type Entry struct {
	ID            int64     `json:"id"`
	UserID        string    `json:"user_id"`
	Seq           int64     `json:"seq"`
	Amount        int64     `json:"amount"`
	BalanceBefore int64     `json:"balance_before"`
	BalanceAfter  int64     `json:"balance_after"`
	Currency      string    `json:"currency"`
	Kind          string    `json:"kind"`
	Reference     string    `json:"reference"`
	Reason        string    `json:"reason,omitempty"`
	Operator      *string   `json:"operator,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

// posting is a change of one balance.
type posting struct {
	userID    string
	amount    int64 // signed; never 0
	kind      string
	reference string
	reason    string
	operator  string // admin user id, credits only
}

// errInsufficient is returned by post when a debit would take the balance
// below zero; the transaction is unchanged by it.
var errInsufficient = apierr.New(apierr.InsufficientFunds, "the balance does not cover the amount")

// addToBalance adds a positive amount, creating the balance row when there
// is none, and clears the exhaustion mark.
const addToBalance = `
INSERT INTO balances (user_id, balance, currency, entries) VALUES ($1, $2, $3, 1)
ON CONFLICT (user_id) DO UPDATE
SET balance = balances.balance + excluded.balance, entries = balances.entries + 1,
    exhausted_notified = false, updated_at = now()
RETURNING balance, entries`

// takeFromBalance subtracts a positive amount only when the balance covers
// it: the row lock and the condition make overdrawing impossible.
const takeFromBalance = `
UPDATE balances SET balance = balance - $2, entries = entries + 1, updated_at = now()
WHERE user_id = $1 AND balance >= $2
RETURNING balance, entries`

const insertEntry = `
INSERT INTO ledger (user_id, seq, amount, balance_before, balance_after, currency, kind, reference, reason, operator)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, '')::uuid)
RETURNING id, created_at`

// post applies p to its user's balance within tx and appends its ledger
// entry. A debit the balance does not cover is errInsufficient and changes
// nothing. Concurrent posts to one balance serialize on its row.
func (s *Service) post(ctx context.Context, tx pgx.Tx, p posting) (Entry, error) {
	if p.amount == 0 {
		return Entry{}, errors.New("post: zero amount")
	}
	var after, seq int64
	var err error
	if p.amount > 0 {
		err = tx.QueryRow(ctx, addToBalance, p.userID, p.amount, s.cfg.Currency).Scan(&after, &seq)
	} else {
		err = tx.QueryRow(ctx, takeFromBalance, p.userID, -p.amount).Scan(&after, &seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return Entry{}, errInsufficient
		}
	}
	if err != nil {
		return Entry{}, fmt.Errorf("%s %d on balance of %s: %w", p.kind, p.amount, p.userID, err)
	}
	e := Entry{UserID: p.userID, Seq: seq, Amount: p.amount, BalanceBefore: after - p.amount, BalanceAfter: after,
		Currency: s.cfg.Currency, Kind: p.kind, Reference: p.reference, Reason: p.reason}
	if p.operator != "" {
		op := p.operator
		e.Operator = &op
	}
	if err := tx.QueryRow(ctx, insertEntry, e.UserID, e.Seq, e.Amount, e.BalanceBefore, e.BalanceAfter, e.Currency,
		e.Kind, e.Reference, e.Reason, p.operator).Scan(&e.ID, &e.CreatedAt); err != nil {
		return Entry{}, fmt.Errorf("append %s entry for %s: %w", p.kind, p.userID, err)
	}
	return e, nil
}

// Balance is a user's balance; a user with no entries has 0.
type Balance struct {
	UserID    string    `json:"user_id"`
	Balance   int64     `json:"balance"`
	Currency  string    `json:"currency"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Balance returns userID's balance.
func (s *Service) Balance(ctx context.Context, userID string) (Balance, error) {
	b := Balance{UserID: userID, Currency: s.cfg.Currency}
	err := s.pool.QueryRow(ctx, `SELECT balance, currency, updated_at FROM balances WHERE user_id = $1`, userID).
		Scan(&b.Balance, &b.Currency, &b.UpdatedAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Balance{}, fmt.Errorf("read balance of %s: %w", userID, err)
	}
	return b, nil
}

// Page limits of the listings.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// EntriesPage is one page of a user's ledger, newest first; NextCursor is
// empty on the last page.
type EntriesPage struct {
	Entries    []Entry `json:"entries"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// Transactions returns a page of userID's ledger, newest first, limit entries
// (1–MaxPageSize, 0 = DefaultPageSize) before cursor (a next_cursor).
func (s *Service) Transactions(ctx context.Context, userID string, limit int, cursor string) (EntriesPage, error) {
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return EntriesPage{}, apierr.New(apierr.Invalid, "limit: must be 1 to %d", MaxPageSize)
	}
	before := int64(1) << 62
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 1 {
			return EntriesPage{}, apierr.New(apierr.Invalid, "cursor: not a cursor this API returned")
		}
		before = n
	}
	rows, err := s.pool.Query(ctx, `
SELECT id, user_id::text, seq, amount, balance_before, balance_after, currency, kind, reference, reason, operator::text, created_at
FROM ledger WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, userID, before, limit+1)
	if err != nil {
		return EntriesPage{}, fmt.Errorf("list ledger of %s: %w", userID, err)
	}
	list, err := pgx.CollectRows(rows, scanEntry)
	if err != nil {
		return EntriesPage{}, fmt.Errorf("list ledger of %s: %w", userID, err)
	}
	page := EntriesPage{Entries: list}
	if len(list) > limit {
		page.Entries = list[:limit]
		page.NextCursor = strconv.FormatInt(list[limit-1].Seq, 10)
	}
	if page.Entries == nil {
		page.Entries = []Entry{}
	}
	return page, nil
}

func scanEntry(row pgx.CollectableRow) (Entry, error) {
	var e Entry
	err := row.Scan(&e.ID, &e.UserID, &e.Seq, &e.Amount, &e.BalanceBefore, &e.BalanceAfter, &e.Currency, &e.Kind,
		&e.Reference, &e.Reason, &e.Operator, &e.CreatedAt)
	return e, err
}

// CreditRequest is the body of POST /admin/users/{id}/credit.
type CreditRequest struct {
	Amount int64  `json:"amount"`
	Reason string `json:"reason"`
}

// MaxCredit bounds one credit or top-up.
const MaxCredit = 1e11

// Credit adds req.Amount to userID's balance as a credit entry naming the
// operator (the administrator's user id). Each call is a new credit. A user
// id the user context does not know is NotFound, and nothing is written.
func (s *Service) Credit(ctx context.Context, operator, userID string, req CreditRequest) (Entry, error) {
	var p validate.Problems
	p.Check(validate.UUID(userID), "id", "must be a user id (UUID)")
	p.Check(req.Amount > 0 && req.Amount <= MaxCredit, "amount", "must be 1 to 100000000000 minor units")
	p.Check(req.Reason != "" && len(req.Reason) <= 200 && validate.NoControlChars(req.Reason), "reason", "must be 1 to 200 characters without control characters")
	if err := p.Err(); err != nil {
		return Entry{}, err
	}
	if err := s.known(ctx, userID, apierr.NotFound, "id"); err != nil {
		return Entry{}, err
	}
	var e Entry
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		e, err = s.post(ctx, tx, posting{userID: userID, amount: req.Amount, kind: KindCredit,
			reference: "admin:" + operator, reason: req.Reason, operator: operator})
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	s.log.InfoContext(ctx, "balance credited", "user_id", userID, "amount", req.Amount, "operator", operator, "balance", e.BalanceAfter)
	return e, nil
}
