package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Grant statuses.
const (
	GrantActive  = "active"
	GrantRevoked = "revoked"
)

// Grant is a plan's quota added to a user's base quota while active.
type Grant struct {
	GrantID   string
	UserID    string
	PlanID    string
	Status    string
	Limits    userevents.Limits
	ExpiresAt *time.Time
	GrantedAt *time.Time // nil for a tombstone (revoked before it was granted)
	RevokedAt *time.Time
}

const selectGrant = `
SELECT grant_id, user_id::text, plan_id, status, max_devices, max_running_devices, max_cpu_cores, max_memory_mb,
       max_storage_gb, device_max_cpu_cores, device_max_memory_mb, idle_minutes, expires_at, granted_at, revoked_at
FROM quota_grants WHERE grant_id = $1`

const insertGrant = `
INSERT INTO quota_grants (grant_id, user_id, plan_id, status, max_devices, max_running_devices, max_cpu_cores,
                          max_memory_mb, max_storage_gb, device_max_cpu_cores, device_max_memory_mb, expires_at, granted_at,
                          idle_minutes)
VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $9, $10, $11, now(), $12)`

const insertTombstone = `
INSERT INTO quota_grants (grant_id, user_id, status, revoked_at) VALUES ($1, $2, 'revoked', now())`

const revokeGrant = `
UPDATE quota_grants SET status = 'revoked', revoked_at = now(), updated_at = now()
WHERE grant_id = $1 AND status = 'active'`

// lockUserQuota locks a user's quotas row, reporting whether the user exists.
const lockUserQuota = `SELECT true FROM quotas WHERE user_id = $1 FOR UPDATE`

func scanGrant(row pgx.Row) (Grant, error) {
	var g Grant
	l := &g.Limits
	err := row.Scan(&g.GrantID, &g.UserID, &g.PlanID, &g.Status, &l.MaxDevices, &l.MaxRunningDevices, &l.MaxCPUCores,
		&l.MaxMemoryMB, &l.MaxStorageGB, &l.DeviceMaxCPUCores, &l.DeviceMaxMemoryMB, &l.IdleMinutes, &g.ExpiresAt, &g.GrantedAt, &g.RevokedAt)
	return g, err
}

// checkCommand returns a permanent fault when a command cannot even be
// answered (no grant id or user id to answer about).
func checkCommand(grantID, userID string) error {
	var p validate.Problems
	p.Check(isExternalID(grantID), "grant_id", "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
	p.Check(validate.UUID(userID), "user_id", "must be a UUID")
	return p.Err()
}

func checkGrantAmounts(l userevents.Limits) error {
	var p validate.Problems
	l.Check("", &p)
	return p.Err()
}

// lockedQuota reads the effective quota of a user whose row tx has locked.
func lockedQuota(ctx context.Context, tx pgx.Tx, userID string) (userevents.Limits, error) {
	q, err := scanQuota(tx.QueryRow(ctx, effectiveQuota, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return userevents.Limits{}, nil
	}
	return q.Limits, err
}

// GrantQuota applies the command e (data cmd) and returns the reply to send:
// EventQuotaGranted or EventQuotaGrantRefused. In one transaction it claims e
// in the inbox and, with the user's quota row locked, records the grant as
// active, unless the grant id is known already: an active grant is answered
// granted again and a revoked one (a tombstone left by a revoke that came
// first included) is refused with reason revoked, so a repeated or late
// command changes nothing. An unknown user or invalid amounts are refused,
// never retried. Only a command without a usable grant_id or user_id is an
// error (apierr Invalid: it cannot be answered).
func (s *Service) GrantQuota(ctx context.Context, e event.Event, cmd userevents.QuotaGrantRequested) (event.Event, error) {
	if err := checkCommand(cmd.GrantID, cmd.UserID); err != nil {
		return event.Event{}, err
	}
	refused := func(reason, msg string) (event.Event, error) {
		s.log.InfoContext(ctx, "quota grant refused", "grant_id", cmd.GrantID, "user_id", cmd.UserID, "reason", reason)
		return events.New(ctx, userevents.EventQuotaGrantRefused, SourceQuotaGrants, cmd.GrantID, userevents.QuotaGrantRefused{
			SchemaVersion: 1, GrantID: cmd.GrantID, UserID: cmd.UserID, Reason: reason, Message: msg,
		})
	}
	if err := checkGrantAmounts(cmd.Limits); err != nil {
		return refused(userevents.RefusedInvalid, err.Error())
	}
	var (
		g      Grant
		known  bool
		limits userevents.Limits
	)
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, lockUserQuota, cmd.UserID).Scan(&exists); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("lock quota of %s: %w", cmd.UserID, err)
		}
		g, err = scanGrant(tx.QueryRow(ctx, selectGrant+` FOR UPDATE`, cmd.GrantID))
		switch {
		case err == nil:
			known = true
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read grant %s: %w", cmd.GrantID, err)
		case exists && first:
			l := cmd.Limits
			if _, err := tx.Exec(ctx, insertGrant, cmd.GrantID, cmd.UserID, cmd.PlanID, l.MaxDevices, l.MaxRunningDevices,
				l.MaxCPUCores, l.MaxMemoryMB, l.MaxStorageGB, l.DeviceMaxCPUCores, l.DeviceMaxMemoryMB, cmd.ExpiresAt, l.IdleMinutes); err != nil {
				return fmt.Errorf("insert grant %s: %w", cmd.GrantID, err)
			}
			if g, err = scanGrant(tx.QueryRow(ctx, selectGrant, cmd.GrantID)); err != nil {
				return fmt.Errorf("read grant %s: %w", cmd.GrantID, err)
			}
			known = true
			s.log.InfoContext(ctx, "quota granted", "grant_id", cmd.GrantID, "user_id", cmd.UserID, "plan_id", cmd.PlanID)
		}
		if !known {
			return nil
		}
		limits, err = lockedQuota(ctx, tx, g.UserID)
		return err
	})
	switch {
	case err != nil:
		return event.Event{}, err
	case !known:
		// Unknown user (or a duplicate of a command refused for that reason).
		return refused(userevents.RefusedUnknownUser, "no user has id "+cmd.UserID)
	case g.UserID != cmd.UserID:
		return refused(userevents.RefusedOtherUser, "grant "+cmd.GrantID+" belongs to another user")
	case g.Status == GrantRevoked:
		return refused(userevents.RefusedRevoked, "grant "+cmd.GrantID+" was revoked")
	}
	return events.New(ctx, userevents.EventQuotaGranted, SourceQuotaGrants, cmd.GrantID, userevents.QuotaGranted{
		SchemaVersion: 1, GrantID: g.GrantID, UserID: g.UserID, PlanID: g.PlanID, Granted: g.Limits, Limits: limits,
		GrantedAt: g.GrantedAt.UTC(),
	})
}

// RevokeQuota applies the command e (data cmd) and returns the reply
// EventQuotaRevoked. In one transaction it claims e in the inbox and marks the
// grant revoked; a grant id not seen yet is recorded as a revoked tombstone,
// so that its grant, should it arrive later, is refused. Revoking is
// idempotent: an unknown or already revoked grant is answered revoked too.
// Only a command without a usable grant_id or user_id is an error (apierr
// Invalid).
func (s *Service) RevokeQuota(ctx context.Context, e event.Event, cmd userevents.QuotaRevokeRequested) (event.Event, error) {
	if err := checkCommand(cmd.GrantID, cmd.UserID); err != nil {
		return event.Event{}, err
	}
	var (
		g      Grant
		limits userevents.Limits
	)
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, lockUserQuota, cmd.UserID).Scan(&exists); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("lock quota of %s: %w", cmd.UserID, err)
		}
		if first {
			tag, err := tx.Exec(ctx, revokeGrant, cmd.GrantID)
			if err != nil {
				return fmt.Errorf("revoke grant %s: %w", cmd.GrantID, err)
			}
			if tag.RowsAffected() == 1 {
				s.log.InfoContext(ctx, "quota grant revoked", "grant_id", cmd.GrantID, "user_id", cmd.UserID)
			}
			// A grant id never seen: leave a tombstone (a concurrent grant
			// of the same id waits on the primary key, then sees it).
			if _, err := tx.Exec(ctx, insertTombstone+` ON CONFLICT (grant_id) DO NOTHING`, cmd.GrantID, cmd.UserID); err != nil {
				return fmt.Errorf("record revoke of grant %s: %w", cmd.GrantID, err)
			}
		}
		g, err = scanGrant(tx.QueryRow(ctx, selectGrant, cmd.GrantID))
		if errors.Is(err, pgx.ErrNoRows) {
			g = Grant{GrantID: cmd.GrantID, UserID: cmd.UserID}
		} else if err != nil {
			return fmt.Errorf("read grant %s: %w", cmd.GrantID, err)
		}
		limits, err = lockedQuota(ctx, tx, g.UserID)
		return err
	})
	if err != nil {
		return event.Event{}, err
	}
	revokedAt := time.Now().UTC()
	if g.RevokedAt != nil {
		revokedAt = g.RevokedAt.UTC()
	}
	return events.New(ctx, userevents.EventQuotaRevoked, SourceQuotaGrants, cmd.GrantID, userevents.QuotaRevoked{
		SchemaVersion: 1, GrantID: cmd.GrantID, UserID: g.UserID, Limits: limits, RevokedAt: revokedAt,
	})
}

// Grants returns the grants (tombstones included) of userID, newest first.
func (s *Service) Grants(ctx context.Context, userID string) ([]Grant, error) {
	if !validate.UUID(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `
SELECT grant_id, user_id::text, plan_id, status, max_devices, max_running_devices, max_cpu_cores, max_memory_mb,
       max_storage_gb, device_max_cpu_cores, device_max_memory_mb, idle_minutes, expires_at, granted_at, revoked_at
FROM quota_grants WHERE user_id = $1 ORDER BY created_at DESC, grant_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list grants of %s: %w", userID, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Grant, error) { return scanGrant(row) })
}
