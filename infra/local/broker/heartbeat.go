package broker

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// beatOwner records that b's owner is alive, by the database's clock.
const beatOwner = `
INSERT INTO broker_owners (owner, beat_at) VALUES ($1, now())
ON CONFLICT (owner) DO UPDATE SET beat_at = excluded.beat_at`

// takeOver makes due now the rows claimed by other owners whose heartbeat is
// older than $3 seconds, and returns those owners.
const takeOver = `
UPDATE broker_deliveries d SET claim = NULL, next_attempt_at = $1, updated_at = $1
FROM broker_owners o
WHERE d.status = 'pending' AND d.claim IS NOT NULL AND d.claim_owner = o.owner
  AND o.owner <> $2 AND o.beat_at < now() - make_interval(secs => $3)
RETURNING o.owner`

// pruneOwners forgets owners silent for a day that hold no claim (brokers
// without a lasting Owner get a new name at every start).
const pruneOwners = `
DELETE FROM broker_owners o
WHERE o.beat_at < now() - interval '1 day'
  AND NOT EXISTS (SELECT 1 FROM broker_deliveries d WHERE d.claim IS NOT NULL AND d.claim_owner = o.owner)`

// heartbeat records b's owner as alive, then every interval again, and takes
// over the claims of owners that stopped beating, until ctx is done. Failures
// are logged: a missed beat only lets the claims go after HeartbeatExpiry
// intervals, and a missed take-over is tried again at the next beat.
func (b *Broker) heartbeat(ctx context.Context, first chan<- struct{}) {
	b.beatOnce(ctx)
	close(first)
	if _, err := b.pool.Exec(ctx, pruneOwners); err != nil && ctx.Err() == nil {
		b.log.WarnContext(ctx, "forget silent broker owners", "err", err)
	}
	ticker := time.NewTicker(b.beat)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		b.beatOnce(ctx)
		b.takeOver(ctx)
	}
}

// beatOnce writes one heartbeat, bounded so that a stuck database cannot pile
// up beats.
func (b *Broker) beatOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, b.beat*HeartbeatExpiry)
	defer cancel()
	if _, err := b.pool.Exec(ctx, beatOwner, b.owner); err != nil && ctx.Err() == nil {
		b.log.WarnContext(ctx, "broker heartbeat", "owner", b.owner, "err", err)
	}
}

// takeOver frees the claims of owners whose heartbeat expired and wakes the
// dispatcher to deliver them.
func (b *Broker) takeOver(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, b.beat*HeartbeatExpiry)
	defer cancel()
	expiry := (b.beat * HeartbeatExpiry).Seconds()
	rows, err := b.pool.Query(ctx, takeOver, b.now().UTC(), b.owner, expiry)
	if err != nil {
		if ctx.Err() == nil {
			b.log.WarnContext(ctx, "take over the claims of stopped brokers", "err", err)
		}
		return
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		if ctx.Err() == nil {
			b.log.WarnContext(ctx, "take over the claims of stopped brokers", "err", err)
		}
		return
	}
	if len(owners) == 0 {
		return
	}
	n := map[string]int{}
	for _, o := range owners {
		n[o]++
	}
	for o, k := range n {
		b.log.WarnContext(ctx, "took over the deliveries of a broker whose heartbeat stopped", "owner", o, "deliveries", k)
	}
	b.notify()
}
