package workqueue_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/workqueue"
)

var q = workqueue.Queue{Table: "jobs"}

// jobs returns a database with an empty queue table jobs and n rows in it,
// due now, with ids 1..n.
func jobs(t *testing.T, n int) *pgxpool.Pool {
	t.Helper()
	pool := dbtest.Database(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
CREATE TABLE jobs (
    id              bigserial   PRIMARY KEY,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    owner           text
);
CREATE INDEX jobs_due ON jobs (next_attempt_at, id) WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO jobs (next_attempt_at) SELECT now() - interval '1 second' FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
	return pool
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ids runs sql on x and returns the first column of its rows.
func ids(t *testing.T, x querier, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := x.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClaimLockedSkipsTheRowsAnotherTransactionHoldsAndRollbackGivesThemBack(t *testing.T) {
	t.Parallel()
	pool := jobs(t, 3)
	ctx := context.Background()
	tx1, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := ids(t, tx1, q.ClaimLocked("id"), 2)
	tx2, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := ids(t, tx2, q.ClaimLocked("id"), 2)
	if !slices.Equal(first, []int64{1, 2}) || !slices.Equal(second, []int64{3}) {
		t.Fatalf("claims %v and %v, want [1 2] and [3]", first, second)
	}
	_ = tx1.Rollback(ctx)
	_ = tx2.Rollback(ctx)
	if again := ids(t, pool, q.ClaimLocked("id"), 10); !slices.Equal(again, []int64{1, 2, 3}) {
		t.Fatalf("after rollback the claim got %v, want every row", again)
	}
}

func TestWhereKeepsARowBehindTheOlderPendingRowOfItsKey(t *testing.T) {
	t.Parallel()
	pool := jobs(t, 3)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `UPDATE jobs SET owner = CASE WHEN id < 3 THEN 'a' ELSE 'b' END`); err != nil {
		t.Fatal(err)
	}
	inOrder := workqueue.Queue{Table: "jobs", Where: `NOT EXISTS (SELECT 1 FROM jobs o
		WHERE o.owner = jobs.owner AND o.status = 'pending' AND o.id < jobs.id)`}
	if got := ids(t, pool, inOrder.ClaimLocked("id"), 10); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("claimed %v, want the oldest row of each key, [1 3]", got)
	}
	var f workqueue.Failures
	f.Add(workqueue.Backoff{Base: time.Hour}, 1, 1, errors.New("later"), false)
	if _, err := pool.Exec(ctx, inOrder.Failed(), f.Args()...); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, pool, inOrder.ClaimLocked("id"), 10); !slices.Equal(got, []int64{3}) {
		t.Fatalf("claimed %v, want [3]: row 2 waits while row 1 of its key is pending", got)
	}
	if _, err := pool.Exec(ctx, inOrder.Done(), []int64{1}); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, pool, inOrder.ClaimLocked("id"), 10); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("claimed %v after row 1 was done, want [2 3]", got)
	}
}

func TestClaimLeasedHidesTheRowsUntilTheLeaseLapsesAndCountsTheAttempt(t *testing.T) {
	t.Parallel()
	pool := jobs(t, 2)
	ctx := context.Background()
	claim := q.ClaimLeased(", owner = $4", "q.id")
	now := time.Now()
	got := ids(t, pool, claim, 1, now, now.Add(time.Minute), "a")
	if !slices.Equal(got, []int64{1}) {
		t.Fatalf("first lease %v", got)
	}
	if got := ids(t, pool, claim, 5, now, now.Add(time.Minute), "b"); !slices.Equal(got, []int64{2}) {
		t.Fatalf("second lease %v, want only the row not leased", got)
	}
	if got := ids(t, pool, claim, 5, now.Add(30*time.Second), now.Add(2*time.Minute), "c"); len(got) != 0 {
		t.Fatalf("leased rows claimed again before their lease lapsed: %v", got)
	}
	got = ids(t, pool, claim, 5, now.Add(2*time.Minute), now.Add(3*time.Minute), "d")
	if !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after the leases lapsed the claim got %v", got)
	}
	var attempts int
	var owner string
	if err := pool.QueryRow(ctx, `SELECT attempts, owner FROM jobs WHERE id = 1`).Scan(&attempts, &owner); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || owner != "d" {
		t.Fatalf("row 1: %d attempts, owner %q; want 2 and d", attempts, owner)
	}
}

func TestFailedRetriesWithBackoffParksAfterMaxAttemptsAndRedriveBringsItBack(t *testing.T) {
	t.Parallel()
	pool := jobs(t, 3)
	ctx := context.Background()
	b := workqueue.Backoff{Base: time.Hour, Max: 4 * time.Hour, MaxAttempts: 3}
	var f workqueue.Failures
	if st, d := f.Add(b, 1, 1, errors.New("first"), false); st != workqueue.StatusPending || d != time.Hour {
		t.Fatalf("first failure: %s after %v", st, d)
	}
	if st, _ := f.Add(b, 2, 3, errors.New("third"), false); st != workqueue.StatusDead {
		t.Fatalf("failure at MaxAttempts: %s", st)
	}
	if st, _ := f.Add(b, 3, 1, errors.New("broken"), true); st != workqueue.StatusDead {
		t.Fatalf("failure parked at once: %s", st)
	}
	if _, err := pool.Exec(ctx, q.Failed(), f.Args()...); err != nil {
		t.Fatal(err)
	}
	var wait time.Duration
	var lastError string
	if err := pool.QueryRow(ctx, `SELECT next_attempt_at - now(), last_error FROM jobs WHERE id = 1 AND status = 'pending' AND attempts = 1`).
		Scan(&wait, &lastError); err != nil {
		t.Fatal(err)
	}
	if wait < 59*time.Minute || lastError != "first" {
		t.Fatalf("row 1 due in %v with %q", wait, lastError)
	}
	if got := ids(t, pool, q.ClaimLocked("id"), 10); len(got) != 0 {
		t.Fatalf("claimed %v: a retried row before its backoff, or a parked row", got)
	}
	if parked := ids(t, pool, q.Parked("id"), 10); !slices.Equal(parked, []int64{2, 3}) {
		t.Fatalf("parked %v", parked)
	}
	tag, err := pool.Exec(ctx, q.Redrive(""), []int64{3}, nil)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("redrive row 3: %v, %d rows", err, tag.RowsAffected())
	}
	if got := ids(t, pool, q.ClaimLocked("id"), 10); !slices.Equal(got, []int64{3}) {
		t.Fatalf("after redrive claimed %v, want [3]", got)
	}
	if tag, err := pool.Exec(ctx, q.Redrive(""), []int64{}, nil); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("redrive all: %v, %d rows", err, tag.RowsAffected())
	}
}

func TestBackoffDoublesFromBaseUpToMax(t *testing.T) {
	t.Parallel()
	b := workqueue.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for attempts, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 1000: time.Second} {
		if got := b.Delay(attempts); got != want {
			t.Errorf("Delay(%d) = %v, want %v", attempts, got, want)
		}
	}
}
