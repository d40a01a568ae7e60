// Package inbox makes event handling idempotent. Delivery is at least once, so
// a handler with side effects claims the event in its context database's
// inbox table in the same transaction as the effects: the first delivery to
// commit does the work, every later one sees a duplicate and does nothing.
package inbox

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/db"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the inbox table. Pass it to db.Open with the context's
// own migrations.
var Migrations = db.Embedded("inbox", migrationFiles, "migrations")

const claim = `
INSERT INTO inbox (source, id, type) VALUES ($1, $2, $3)
ON CONFLICT (source, id) DO NOTHING`

// Claim records e's (source, id) within tx and reports whether this is its
// first record: true means handle e in tx, false means a committed
// transaction already handled it, so acknowledge and do nothing. While
// another open transaction holds a claim on the same event, Claim waits for
// it: false if that transaction commits, true if it rolls back. A claim that
// rolls back with tx leaves no trace.
func Claim(ctx context.Context, tx pgx.Tx, e event.Event) (first bool, err error) {
	if tx == nil {
		return false, errors.New("claim inbox event: no transaction")
	}
	if e.Source() == "" || e.ID() == "" {
		return false, fmt.Errorf("claim inbox event %q from %q: source and id are required", e.ID(), e.Source())
	}
	tag, err := tx.Exec(ctx, claim, e.Source(), e.ID(), e.Type())
	if err != nil {
		return false, fmt.Errorf("claim inbox event %s from %s: %w", e.ID(), e.Source(), err)
	}
	return tag.RowsAffected() == 1, nil
}
