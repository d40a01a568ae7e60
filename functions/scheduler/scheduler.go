// Package scheduler is the scheduler context: the platform's timed work and
// the dead-letter sink every Trigger names.
package scheduler

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// Database is the context's own database.
const Database = "cloudphone_scheduler"

// ContextName is the bounded context's name in every function spec (its
// OpenFaaS bundle is cloudphone-<name>).
const ContextName = "scheduler"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the context's tables. Open the database with
// inbox.Migrations, outbox.Migrations (re-driven letters leave through the
// outbox) and these: every function of the context opens it with all three,
// since a process migrates a database with the sets of whichever asks first.
var Migrations = db.Embedded("scheduler", migrationFiles, "migrations")

// MigrationSets are every migration set of the context's database.
func MigrationSets() []db.Migrations {
	return []db.Migrations{inbox.Migrations, outbox.Migrations, Migrations}
}

// DeadLetter is one event the broker could not deliver.
type DeadLetter struct {
	ID          int64           `json:"id"`
	Source      string          `json:"source"`
	EventID     string          `json:"event_id"`
	Type        string          `json:"type"`
	Destination string          `json:"destination"`
	ErrorCode   string          `json:"error_code"`
	ErrorData   string          `json:"error_data"`
	Event       json.RawMessage `json:"event"`
	ReceivedAt  time.Time       `json:"received_at"`
	// RedrivenAt is when an operator last sent it to the broker again
	// (cleared when it fails again); Redrives counts those sends.
	RedrivenAt *time.Time `json:"redriven_at,omitempty"`
	Redrives   int        `json:"redrives"`
}

// DeadLetters stores and lists dead letters. Safe for concurrent use.
type DeadLetters struct{ pool *pgxpool.Pool }

// NewDeadLetters returns the store on pool.
func NewDeadLetters(pool *pgxpool.Pool) *DeadLetters { return &DeadLetters{pool: pool} }

const insertDeadLetter = `
INSERT INTO dead_letters (event_source, event_id, event_type, destination, error_code, error_data, event)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (event_source, event_id, destination) DO UPDATE
SET error_code = EXCLUDED.error_code, error_data = EXCLUDED.error_data, event = EXCLUDED.event,
    received_at = now(), redriven_at = NULL
WHERE dead_letters.redriven_at IS NOT NULL`

// Record stores e with the broker's knativeerror* extensions. Recording the
// same event for the same destination twice stores it once; one that comes
// back after a re-drive is received again (with its new error).
func (d *DeadLetters) Record(ctx context.Context, e event.Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode dead letter %s: %w", e.ID(), err)
	}
	ext := e.Extensions()
	str := func(k string) string { s, _ := ext[k].(string); return s }
	code := str("knativeerrorcode")
	if code == "" {
		if n, ok := ext["knativeerrorcode"].(int32); ok {
			code = fmt.Sprint(n)
		}
	}
	_, err = d.pool.Exec(ctx, insertDeadLetter, e.Source(), e.ID(), e.Type(), str("knativeerrordest"), code, str("knativeerrordata"), body)
	if err != nil {
		return fmt.Errorf("record dead letter %s: %w", e.ID(), err)
	}
	return nil
}

const deadLetterColumns = `id, event_source, event_id, event_type, destination, error_code, error_data, event,
    received_at, redriven_at, redrives`

const listDeadLetters = `SELECT ` + deadLetterColumns + ` FROM dead_letters ORDER BY received_at DESC, id DESC LIMIT $1`

func scanDeadLetter(row pgx.Row) (DeadLetter, error) {
	var l DeadLetter
	err := row.Scan(&l.ID, &l.Source, &l.EventID, &l.Type, &l.Destination, &l.ErrorCode, &l.ErrorData, &l.Event,
		&l.ReceivedAt, &l.RedrivenAt, &l.Redrives)
	return l, err
}

// List returns the newest dead letters first.
func (d *DeadLetters) List(ctx context.Context, limit int) ([]DeadLetter, error) {
	rows, err := d.pool.Query(ctx, listDeadLetters, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		l, err := scanDeadLetter(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Redrive sends dead letter id to the broker again, through the context's
// outbox in the same transaction that marks it re-driven: the same event
// (source and id), without the broker's error extensions, so the consumers
// that took it before skip it and the one that failed gets it again. An
// unknown id is apierr NotFound; a stored event that cannot be read is
// apierr Invalid.
func (d *DeadLetters) Redrive(ctx context.Context, id int64) (DeadLetter, error) {
	var out DeadLetter
	err := db.WithTx(ctx, d.pool, func(tx pgx.Tx) error {
		l, err := scanDeadLetter(tx.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.New(apierr.NotFound, "no dead letter %d", id)
		}
		if err != nil {
			return fmt.Errorf("read dead letter %d: %w", id, err)
		}
		var e event.Event
		if err := json.Unmarshal(l.Event, &e); err != nil {
			return apierr.Wrap(apierr.Invalid, fmt.Errorf("decode dead letter %d: %w", id, err), "the stored event cannot be read")
		}
		for _, k := range []string{"knativeerrorcode", "knativeerrordest", "knativeerrordata"} {
			delete(e.Extensions(), k)
		}
		if err := outbox.Add(ctx, tx, e); err != nil {
			return fmt.Errorf("re-drive dead letter %d: %w", id, err)
		}
		out, err = scanDeadLetter(tx.QueryRow(ctx, `UPDATE dead_letters SET redriven_at = now(), redrives = redrives + 1
			WHERE id = $1 RETURNING `+deadLetterColumns, id))
		return err
	})
	return out, err
}
