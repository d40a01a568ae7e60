// Package workqueue is the one way a Postgres table is used as a work queue
// here (the outbox, the local broker's deliveries, device-runtime's
// commands): claim due rows with FOR
// UPDATE SKIP LOCKED, hold them by a transaction or a lease, retry failures
// with exponential backoff, park the rows that keep failing, and redrive
// them.
//
// A queue table has at least these columns, and an index on
// (next_attempt_at, id) WHERE status = 'pending':
//
//	id              bigint      PRIMARY KEY
//	status          text        'pending' (to do) or 'dead' (parked until redriven);
//	                            a queue may keep finished rows under statuses of its own
//	attempts        integer     attempts made (or started, with a lease)
//	next_attempt_at timestamptz when the row is due; while leased, when the lease lapses
//	last_error      text        why the last attempt failed
//
// Queue builds the statements; the caller runs them (in its transaction or
// not) and keeps its own columns beside these.
package workqueue

import (
	"time"
)

// Statuses of a row.
const (
	StatusPending = "pending"
	StatusDead    = "dead"
)

// Queue is a work-queue table.
type Queue struct {
	// Table is the table's name: a trusted identifier, never user input.
	Table string
	// Order is the ORDER BY of due rows, first claimed first; "id" (the
	// order they were added) when empty.
	Order string
	// Where, when set, is a further condition a due row must meet (a SQL
	// boolean expression; the table is not aliased, so it names the row's
	// columns by Table.column), such as "no older row of the same key is
	// pending" for a queue worked in order per key.
	Where string
}

func (q Queue) order() string {
	if q.Order == "" {
		return "id"
	}
	return q.Order
}

// due selects columns of up to $1 pending rows due at dueAt that no other
// transaction holds, locking them.
func (q Queue) due(columns, dueAt string) string {
	where := ""
	if q.Where != "" {
		where = ` AND (` + q.Where + `)`
	}
	return `SELECT ` + columns + ` FROM ` + q.Table + `
WHERE status = 'pending' AND next_attempt_at <= ` + dueAt + where + `
ORDER BY ` + q.order() + `
LIMIT $1
FOR UPDATE SKIP LOCKED`
}

// ClaimLocked returns the statement that claims up to $1 due rows (by the
// database's clock) for the rest of the calling transaction, returning
// columns of each: other claimers skip them until it ends, and a rollback
// (or a crash) gives them back at once. The caller records each row's
// outcome in that transaction.
func (q Queue) ClaimLocked(columns string) string {
	return q.due(columns, "now()")
}

// ClaimLeased returns the statement that claims up to $1 rows due at $2 for
// a lease that lapses at $3, counting the attempt, in its own transaction:
// the rows are hidden from other claimers until $3, when they are due again
// unless the claimer recorded their outcome. set adds assignments (", col =
// $4", ...; columns of the table, which is aliased q); columns (of q) are
// returned.
func (q Queue) ClaimLeased(set, columns string) string {
	return `UPDATE ` + q.Table + ` AS q
SET attempts = q.attempts + 1, next_attempt_at = $3` + set + `
FROM (` + q.due("id", "$2") + `) due
WHERE q.id = due.id
RETURNING ` + columns
}

// Done is the statement that removes the finished rows whose ids are $1.
func (q Queue) Done() string {
	return `DELETE FROM ` + q.Table + ` WHERE id = ANY($1::bigint[])`
}

// Failed is the statement that records failed attempts of the rows $1
// (ids): attempts becomes $2, the row is due again $3 microseconds after now
// (the wait counts from the failure), last_error becomes $4 and status $5
// (StatusPending to retry, StatusDead to park). Fail fills the arguments.
func (q Queue) Failed() string {
	return `UPDATE ` + q.Table + ` AS q
SET attempts = f.attempts,
	next_attempt_at = clock_timestamp() + f.delay_us * interval '1 microsecond',
	last_error = f.error,
	status = f.status
FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $5::text[]) AS f(id, attempts, delay_us, error, status)
WHERE q.id = f.id`
}

// Redrive returns the statement that makes parked rows pending again, due
// at $2 (now when null), with attempts back to 0 and last_error kept: those
// with the ids $1, or all of them when $1 is empty. set adds assignments
// (", col = ...").
func (q Queue) Redrive(set string) string {
	return `UPDATE ` + q.Table + `
SET status = 'pending', attempts = 0, next_attempt_at = coalesce($2::timestamptz, now())` + set + `
WHERE status = 'dead' AND (cardinality($1::bigint[]) = 0 OR id = ANY($1::bigint[]))`
}

// Parked returns the statement that lists up to $1 parked rows, oldest
// first, with columns.
func (q Queue) Parked(columns string) string {
	return `SELECT ` + columns + ` FROM ` + q.Table + ` WHERE status = 'dead' ORDER BY id LIMIT $1`
}

// Backoff is the wait between attempts: Base after the first failure,
// doubling per failure, capped at Max; after MaxAttempts failures a row is
// parked.
type Backoff struct {
	Base        time.Duration
	Max         time.Duration
	MaxAttempts int
}

// Delay returns the wait after attempts failures.
func (b Backoff) Delay(attempts int) time.Duration {
	d := b.Base
	for i := 1; i < attempts && d < b.Max; i++ {
		d *= 2
	}
	return min(d, max(b.Max, b.Base))
}

// Failures collects the arguments of Failed for a batch.
type Failures struct {
	ids, delays      []int64
	attempts         []int32
	errors, statuses []string
}

// maxErrorLen caps last_error.
const maxErrorLen = 2000

// Add records the failure of row id after attempts failures in all,
// parking it when park is set or attempts reached b.MaxAttempts, else
// delaying it by b.Delay(attempts). It returns the status the row gets and
// its delay.
func (f *Failures) Add(b Backoff, id int64, attempts int, err error, park bool) (string, time.Duration) {
	status, delay := StatusPending, b.Delay(attempts)
	if park || (b.MaxAttempts > 0 && attempts >= b.MaxAttempts) {
		status = StatusDead
	}
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	f.ids = append(f.ids, id)
	f.attempts = append(f.attempts, int32(attempts))
	f.delays = append(f.delays, delay.Microseconds())
	f.errors = append(f.errors, msg)
	f.statuses = append(f.statuses, status)
	return status, delay
}

// Len is the number of failures added.
func (f *Failures) Len() int { return len(f.ids) }

// Args are the arguments of Failed.
func (f *Failures) Args() []any {
	return []any{f.ids, f.attempts, f.delays, f.errors, f.statuses}
}
