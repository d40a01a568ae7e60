package inbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
)

func newEvent(source string) event.Event {
	e := event.New()
	e.SetID(events.NewID())
	e.SetType("cloudphone.test.thing.happened")
	e.SetSource(source)
	return e
}

func claimIn(t *testing.T, pool *pgxpool.Pool, e event.Event) bool {
	t.Helper()
	var first bool
	if err := db.WithTx(t.Context(), pool, func(tx pgx.Tx) (err error) {
		first, err = inbox.Claim(t.Context(), tx, e)
		return err
	}); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return first
}

func begin(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// waitUntilBlocked waits until tx's backend waits for a lock.
func waitUntilBlocked(t *testing.T, pool *pgxpool.Pool, tx pgx.Tx) {
	t.Helper()
	pid := tx.Conn().PgConn().PID()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting bool
		err := pool.QueryRow(t.Context(),
			`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)`, int32(pid)).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("second claim never blocked on the first")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type claimResult struct {
	first bool
	err   error
}

// claimAsync claims e in tx on another goroutine.
func claimAsync(ctx context.Context, tx pgx.Tx, e event.Event) <-chan claimResult {
	out := make(chan claimResult, 1)
	go func() {
		first, err := inbox.Claim(ctx, tx, e)
		out <- claimResult{first, err}
	}()
	return out
}

func TestClaimOfAnEventAlreadyCommittedReturnsFalse(t *testing.T) {
	t.Parallel()
	pool := dbtest.Database(t, inbox.Migrations)
	e := newEvent("/cloudphone/test/a")
	if !claimIn(t, pool, e) {
		t.Fatal("first claim returned false")
	}
	if claimIn(t, pool, e) {
		t.Error("second claim in a later transaction returned true")
	}
	// The same id from another source is another event.
	other := e.Clone()
	other.SetSource("/cloudphone/test/b")
	if !claimIn(t, pool, other) {
		t.Error("claim of the same id from another source returned false")
	}
}

func TestConcurrentClaimsOfOneEventLetExactlyOneWin(t *testing.T) {
	t.Parallel()
	pool := dbtest.Database(t, inbox.Migrations)
	e := newEvent("/cloudphone/test/a")

	tx1, tx2 := begin(t, pool), begin(t, pool)
	first1, err := inbox.Claim(t.Context(), tx1, e)
	if err != nil || !first1 {
		t.Fatalf("tx1 Claim = %v, %v; want true", first1, err)
	}
	second := claimAsync(t.Context(), tx2, e)
	waitUntilBlocked(t, pool, tx2)
	if err := tx1.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	res := <-second
	if res.err != nil || res.first {
		t.Fatalf("tx2 Claim after tx1 committed = %v, %v; want false", res.first, res.err)
	}
}

func TestClaimRolledBackCanBeClaimedAgain(t *testing.T) {
	t.Parallel()
	pool := dbtest.Database(t, inbox.Migrations)

	t.Run("later", func(t *testing.T) {
		t.Parallel()
		e := newEvent("/cloudphone/test/a")
		tx := begin(t, pool)
		if first, err := inbox.Claim(t.Context(), tx, e); err != nil || !first {
			t.Fatalf("Claim = %v, %v", first, err)
		}
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !claimIn(t, pool, e) {
			t.Error("claim after a rolled-back claim returned false")
		}
	})

	t.Run("while waiting for it", func(t *testing.T) {
		t.Parallel()
		e := newEvent("/cloudphone/test/a")
		tx1, tx2 := begin(t, pool), begin(t, pool)
		if first, err := inbox.Claim(t.Context(), tx1, e); err != nil || !first {
			t.Fatalf("tx1 Claim = %v, %v", first, err)
		}
		second := claimAsync(t.Context(), tx2, e)
		waitUntilBlocked(t, pool, tx2)
		if err := tx1.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		if res := <-second; res.err != nil || !res.first {
			t.Fatalf("tx2 Claim after tx1 rolled back = %v, %v; want true", res.first, res.err)
		}
	})
}

func TestClaimRefusesEventWithoutSourceOrID(t *testing.T) {
	t.Parallel()
	pool := dbtest.Database(t, inbox.Migrations)
	tx := begin(t, pool)
	if _, err := inbox.Claim(t.Context(), tx, event.New()); err == nil {
		t.Error("Claim accepted an event without source and id")
	}
}
