package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// Subscription statuses.
const (
	SubscriptionActive  = "active"
	SubscriptionExpired = "expired"
)

// Subscription is a user's plan until ExpiresAt; GrantID is the quota grant
// (an order id) that backs it.
type Subscription struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	PlanID    string    `json:"plan_id"`
	Status    string    `json:"status"`
	GrantID   string    `json:"grant_id"`
	StartedAt time.Time `json:"started_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Subscriptions returns userID's subscriptions, active ones first, then the
// latest expiry first.
func (s *Service) Subscriptions(ctx context.Context, userID string) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id::text, user_id::text, plan_id, status, grant_id, started_at, expires_at FROM subscriptions
WHERE user_id = $1 ORDER BY status = 'active' DESC, expires_at DESC LIMIT 100`, userID)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of %s: %w", userID, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) {
		var sub Subscription
		err := r.Scan(&sub.ID, &sub.UserID, &sub.PlanID, &sub.Status, &sub.GrantID, &sub.StartedAt, &sub.ExpiresAt)
		return sub, err
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of %s: %w", userID, err)
	}
	if list == nil {
		list = []Subscription{}
	}
	return list, nil
}

// ExpireSubscriptions marks every active subscription whose expires_at has
// passed expired and, in the same transaction, sends the revoke command of its
// grant (correlationid: the subscription id). It returns how many expired.
// Overlapping runs skip each other's rows.
func (s *Service) ExpireSubscriptions(ctx context.Context) (int, error) {
	n := 0
	for {
		batch := 0
		err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `
SELECT id::text, user_id::text, grant_id FROM subscriptions
WHERE status = 'active' AND expires_at <= $1
ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED`, s.now().UTC())
			if err != nil {
				return err
			}
			type due struct{ id, userID, grantID string }
			list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
				var d due
				err := r.Scan(&d.id, &d.userID, &d.grantID)
				return d, err
			})
			if err != nil {
				return err
			}
			for _, d := range list {
				if _, err := tx.Exec(ctx, `UPDATE subscriptions SET status = 'expired', updated_at = now() WHERE id = $1`, d.id); err != nil {
					return err
				}
				revoke, err := newEvent(ctx, userevents.EventQuotaRevokeRequested, SourceJobs, d.grantID, d.id,
					userevents.QuotaRevokeRequested{SchemaVersion: 1, GrantID: d.grantID, UserID: d.userID})
				if err != nil {
					return err
				}
				if err := outbox.Add(ctx, tx, revoke); err != nil {
					return err
				}
				s.log.InfoContext(ctx, "subscription expired", "subscription_id", d.id, "user_id", d.userID, "grant_id", d.grantID)
			}
			batch = len(list)
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("expire subscriptions: %w", err)
		}
		n += batch
		if batch > 0 {
			s.committed(StepSubscriptionEx)
		}
		if batch < 100 {
			return n, nil
		}
	}
}
