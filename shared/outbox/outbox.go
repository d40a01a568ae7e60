// Package outbox publishes events written in the same transaction as the state
// change they announce (the transactional outbox).
//
// Add inserts events into the context database's outbox table inside the
// caller's transaction, so an event exists if and only if its state change
// committed. A Relay then sends them to the broker through an events.Sender,
// at least once: an event whose send succeeded may be sent again when the
// relay's transaction fails to commit afterwards, so consumers deduplicate
// (package inbox).
//
// Table outbox (migration set "outbox"): a row is pending until the broker
// accepts its event, and is then deleted (delete-on-publish keeps the table as
// small as the backlog; the broker is the record of what was published). A
// send that fails is retried with exponential backoff; after MaxAttempts
// failures the row's status becomes 'dead' and it stays, with its last error,
// until Redrive makes it pending again. payload is bytea holding the
// structured CloudEvents JSON exactly as encoded, since jsonb would refuse
// some valid JSON (a \u0000 escape) and re-order keys; read it with
// convert_from(payload, 'UTF8')::jsonb.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/workqueue"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the outbox table. Pass it to db.Open with the context's
// own migrations.
var Migrations = db.Embedded("outbox", migrationFiles, "migrations")

// Channel is the LISTEN/NOTIFY channel Add signals on.
const Channel = "outbox"

// Row is one outbox row.
type Row struct {
	ID            int64     `json:"id"`
	EventID       string    `json:"event_id"`
	Type          string    `json:"type"`
	Source        string    `json:"source"`
	Subject       string    `json:"subject"`
	Payload       []byte    `json:"payload"` // structured CloudEvents JSON
	CreatedAt     time.Time `json:"created_at"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
	LastError     string    `json:"last_error"`
	Status        string    `json:"status"` // pending or dead
}

// Event decodes the row's payload.
func (r Row) Event() (event.Event, error) {
	var e event.Event
	if err := json.Unmarshal(r.Payload, &e); err != nil {
		return e, fmt.Errorf("decode outbox row %d (event %s): %w", r.ID, r.EventID, err)
	}
	return e, nil
}

// Statuses of a row.
const (
	StatusPending = workqueue.StatusPending
	StatusDead    = workqueue.StatusDead
)

// insertEvents inserts the events in array order, so ids follow the order
// given to Add, and signals the relays. NOTIFY is delivered at commit and not
// at all on rollback; notifications of one transaction are merged into one.
const insertEvents = `
WITH inserted AS (
	INSERT INTO outbox (event_id, type, source, subject, payload)
	SELECT event_id, type, source, subject, payload
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
		WITH ORDINALITY AS e(event_id, type, source, subject, payload, n)
	ORDER BY n
)
SELECT pg_notify('` + Channel + `', '')`

// Add records evs in the outbox within tx, the transaction that makes the
// state change they announce; they are published after tx commits and never
// if it rolls back. Every event must be valid and its id unique among
// unpublished events (a repeated id fails the insert, and with it tx). Add
// with no events does nothing.
func Add(ctx context.Context, tx pgx.Tx, evs ...event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if tx == nil {
		return errors.New("add to outbox: no transaction")
	}
	ids := make([]string, len(evs))
	types := make([]string, len(evs))
	sources := make([]string, len(evs))
	subjects := make([]string, len(evs))
	payloads := make([][]byte, len(evs))
	for i, e := range evs {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("add %s %s to outbox: %w", e.Type(), e.ID(), err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode %s %s for outbox: %w", e.Type(), e.ID(), err)
		}
		ids[i], types[i], sources[i], subjects[i], payloads[i] = e.ID(), e.Type(), e.Source(), e.Subject(), b
	}
	if _, err := tx.Exec(ctx, insertEvents, ids, types, sources, subjects, payloads); err != nil {
		return fmt.Errorf("add %d events to outbox (first %s %s): %w", len(evs), types[0], ids[0], err)
	}
	return nil
}
