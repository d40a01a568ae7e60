// Package scheduler is the scheduler context: the platform's timed work and
// the dead-letter sink every Trigger names.
package scheduler

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/db"
)

// Database is the context's own database.
const Database = "cloudphone_scheduler"

// ContextName is the bounded context's name in every function spec (its
// OpenFaaS bundle is cloudphone-<name>).
const ContextName = "scheduler"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the context's tables.
var Migrations = db.Embedded("scheduler", migrationFiles, "migrations")

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
}

// DeadLetters stores and lists dead letters. Safe for concurrent use.
type DeadLetters struct{ pool *pgxpool.Pool }

// NewDeadLetters returns the store on pool.
func NewDeadLetters(pool *pgxpool.Pool) *DeadLetters { return &DeadLetters{pool: pool} }

const insertDeadLetter = `
INSERT INTO dead_letters (event_source, event_id, event_type, destination, error_code, error_data, event)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (event_source, event_id, destination) DO NOTHING`

// Record stores e with the broker's knativeerror* extensions. Recording the
// same event for the same destination twice stores it once.
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

const listDeadLetters = `
SELECT id, event_source, event_id, event_type, destination, error_code, error_data, event, received_at
FROM dead_letters ORDER BY id DESC LIMIT $1`

// List returns the newest dead letters first.
func (d *DeadLetters) List(ctx context.Context, limit int) ([]DeadLetter, error) {
	rows, err := d.pool.Query(ctx, listDeadLetters, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var l DeadLetter
		if err := rows.Scan(&l.ID, &l.Source, &l.EventID, &l.Type, &l.Destination, &l.ErrorCode, &l.ErrorData, &l.Event, &l.ReceivedAt); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}
