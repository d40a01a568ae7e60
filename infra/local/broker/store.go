package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
)

// Row is a stored delivery, as Dead reports it.
type Row struct {
	ID         int64
	Trigger    string
	Subscriber string
	Event      event.Event
	Status     string // pending or dead
	DeadLetter bool   // the row was headed to the trigger's dead-letter sink
	Attempts   int    // attempts towards the current target
	LastStatus int    // HTTP status of the last attempt; 0 when none was made
	LastError  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

var selectDead = queue.Parked(`id, trigger, subscriber, event, status, dead_letter, attempts,
       coalesce(last_status, 0), coalesce(last_error, ''), created_at, updated_at`)

// Dead returns up to limit dead deliveries (100 when limit ≤ 0), oldest
// first.
func (b *Broker) Dead(ctx context.Context, limit int) ([]Row, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := b.pool.Query(ctx, selectDead, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Row, error) {
		var r Row
		var doc []byte
		if err := row.Scan(&r.ID, &r.Trigger, &r.Subscriber, &doc, &r.Status, &r.DeadLetter, &r.Attempts,
			&r.LastStatus, &r.LastError, &r.CreatedAt, &r.UpdatedAt); err != nil {
			return r, err
		}
		if err := json.Unmarshal(doc, &r.Event); err != nil {
			return r, fmt.Errorf("decode event of delivery %d: %w", r.ID, err)
		}
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead deliveries: %w", err)
	}
	return out, nil
}

var redriveDead = queue.Redrive(", dead_letter = false, error_code = NULL, error_data = NULL, claim = NULL, updated_at = $2")

// Redrive makes dead deliveries due again towards their trigger's subscriber
// (not its dead-letter sink), with a fresh retry budget: those with the given
// ids, or all of them when no id is given. Ids that are not dead are
// skipped. It returns how many rows it brought back.
func (b *Broker) Redrive(ctx context.Context, ids ...int64) (int, error) {
	if ids == nil {
		ids = []int64{}
	}
	tag, err := b.pool.Exec(ctx, redriveDead, ids, b.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("redrive dead deliveries: %w", err)
	}
	if tag.RowsAffected() > 0 {
		b.notify()
	}
	return int(tag.RowsAffected()), nil
}
