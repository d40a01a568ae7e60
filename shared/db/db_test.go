package db_test

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
)

// files builds a migration FS from name → SQL.
func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range m {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

// fresh returns a database name that does not exist yet and is dropped when
// the test ends.
func fresh(t *testing.T) string {
	t.Helper()
	name := dbtest.Name(t)
	t.Cleanup(func() { dbtest.Drop(t, name) })
	return name
}

func open(t *testing.T, name string, sets ...db.Migrations) *pgxpool.Pool {
	t.Helper()
	pool, err := db.Open(t.Context(), dbtest.BaseURL(t), name, sets...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func applied(t *testing.T, pool *pgxpool.Pool, set string) []int {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT version FROM schema_migrations WHERE set = $1 ORDER BY version`, set)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return versions
}

func tableExists(t *testing.T, pool *pgxpool.Pool, table string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil {
		t.Fatalf("look up table %s: %v", table, err)
	}
	return ok
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenCreatesDatabaseAndAppliesMigrationsOnceUnderEightConcurrentOpens(t *testing.T) {
	t.Parallel()
	name := fresh(t)
	set := db.Migrations{Set: "app", FS: files(map[string]string{
		"001_counter.up.sql": `CREATE TABLE counter (n int NOT NULL); SELECT pg_sleep(0.1);`,
		"002_count.up.sql":   `INSERT INTO counter VALUES (1);`,
		"003_more.up.sql":    `ALTER TABLE counter ADD COLUMN note text;`,
		"README.md":          `not a migration`,
	})}

	const opens = 8
	pools := make([]*pgxpool.Pool, opens)
	errs := make([]error, opens)
	var wg sync.WaitGroup
	for i := range opens {
		wg.Go(func() { pools[i], errs[i] = db.Open(t.Context(), dbtest.BaseURL(t), name, set) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(pools[i].Close)
	}

	var rows int
	if err := pools[0].QueryRow(t.Context(), `SELECT count(*) FROM counter`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("counter has %d rows, want 1: a migration ran more than once", rows)
	}
	if got := applied(t, pools[0], "app"); !equal(got, []int{1, 2, 3}) {
		t.Errorf("applied versions = %v, want [1 2 3]", got)
	}
}

func TestOpenTracksEachSetSeparately(t *testing.T) {
	t.Parallel()
	name := fresh(t)
	a := db.Migrations{Set: "a", FS: files(map[string]string{"001_a.up.sql": `CREATE TABLE a (x int);`})}
	b := db.Migrations{Set: "b", FS: files(map[string]string{"001_b.up.sql": `CREATE TABLE b (x int);`})}
	pool := open(t, name, a, b)
	if !tableExists(t, pool, "a") || !tableExists(t, pool, "b") {
		t.Fatal("version 1 of both sets should be applied")
	}
	// Opening again with a later version of one set applies only that.
	a.FS.(fstest.MapFS)["002_a2.up.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE a2 (x int);`)}
	pool = open(t, name, a, b)
	if got := applied(t, pool, "a"); !equal(got, []int{1, 2}) {
		t.Errorf("set a versions = %v, want [1 2]", got)
	}
	if got := applied(t, pool, "b"); !equal(got, []int{1}) {
		t.Errorf("set b versions = %v, want [1]", got)
	}
}

func TestOpenSizesPoolFromURL(t *testing.T) {
	t.Parallel()
	name := fresh(t)
	pool := open(t, name)
	if got := pool.Config().MaxConns; got != db.DefaultMaxConns {
		t.Errorf("default MaxConns = %d, want %d", got, db.DefaultMaxConns)
	}

	u, err := url.Parse(dbtest.BaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "3")
	u.RawQuery = q.Encode()
	sized, err := db.Open(t.Context(), u.String(), name)
	if err != nil {
		t.Fatalf("Open with pool_max_conns: %v", err)
	}
	defer sized.Close()
	if got := sized.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns with pool_max_conns=3 is %d", got)
	}
	if got := sized.Config().ConnConfig.Database; got != name {
		t.Errorf("pool database = %q, want %q", got, name)
	}
}

func TestOpenRejectsMalformedSets(t *testing.T) {
	t.Parallel()
	ok := files(map[string]string{"001_ok.up.sql": `SELECT 1;`})
	tests := []struct {
		name string
		sets []db.Migrations
	}{
		{"unnamed set", []db.Migrations{{FS: ok}}},
		{"no files", []db.Migrations{{Set: "x"}}},
		{"set given twice", []db.Migrations{{Set: "x", FS: ok}, {Set: "x", FS: ok}}},
		{"version zero", []db.Migrations{{Set: "x", FS: files(map[string]string{"000_zero.up.sql": `SELECT 1;`})}}},
		{"two names for one version", []db.Migrations{{Set: "x", FS: files(map[string]string{
			"001_a.up.sql": `SELECT 1;`, "001_b.up.sql": `SELECT 1;`,
		})}}},
		{"down without up", []db.Migrations{{Set: "x", FS: files(map[string]string{"001_a.down.sql": `SELECT 1;`})}}},
	}
	name := fresh(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := db.Open(t.Context(), dbtest.BaseURL(t), name, tt.sets...)
			if err == nil {
				pool.Close()
				t.Fatal("Open succeeded, want an error")
			}
		})
	}
}

func TestFailedMigrationLeavesNothingOfItApplied(t *testing.T) {
	t.Parallel()
	name := fresh(t)
	set := db.Migrations{Set: "app", FS: files(map[string]string{
		"001_good.up.sql":  `CREATE TABLE good (x int);`,
		"002_bad.up.sql":   `CREATE TABLE half (x int); INSERT INTO good VALUES (1); SELECT no_such_column FROM good;`,
		"003_after.up.sql": `CREATE TABLE after (x int);`,
	})}
	if pool, err := db.Open(t.Context(), dbtest.BaseURL(t), name, set); err == nil {
		pool.Close()
		t.Fatal("Open succeeded with a failing migration")
	}

	pool := open(t, name) // no sets: just look
	if !tableExists(t, pool, "good") {
		t.Error("migration 1 should stay applied")
	}
	if tableExists(t, pool, "half") || tableExists(t, pool, "after") {
		t.Error("the failed migration or a later one left a table behind")
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM good`).Scan(&n); err != nil || n != 0 {
		t.Errorf("good has %d rows (err %v), want 0", n, err)
	}
	if got := applied(t, pool, "app"); !equal(got, []int{1}) {
		t.Errorf("applied versions = %v, want [1]", got)
	}

	// Fixing the migration lets the next Open carry on from version 2.
	set.FS.(fstest.MapFS)["002_bad.up.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE half (x int);`)}
	pool = open(t, name, set)
	if got := applied(t, pool, "app"); !equal(got, []int{1, 2, 3}) {
		t.Errorf("applied versions after the fix = %v, want [1 2 3]", got)
	}
}

func TestMigrateDownRevertsNewestFirstDownToVersion(t *testing.T) {
	t.Parallel()
	set := db.Migrations{Set: "app", FS: files(map[string]string{
		"001_a.up.sql":   `CREATE TABLE a (x int);`,
		"001_a.down.sql": `DROP TABLE a;`,
		"002_b.up.sql":   `CREATE TABLE b (a_x int);`,
		"002_b.down.sql": `DROP TABLE b;`,
		"003_c.up.sql":   `ALTER TABLE b ADD COLUMN c int;`,
		"003_c.down.sql": `ALTER TABLE b DROP COLUMN c;`, // fails unless b still exists: proves the order
	})}
	pool := dbtest.Database(t, set)

	if err := db.MigrateDown(t.Context(), pool, set, 1); err != nil {
		t.Fatalf("MigrateDown to 1: %v", err)
	}
	if got := applied(t, pool, "app"); !equal(got, []int{1}) {
		t.Errorf("after down to 1: versions = %v, want [1]", got)
	}
	if !tableExists(t, pool, "a") || tableExists(t, pool, "b") {
		t.Error("after down to 1: want table a and no table b")
	}

	if err := db.MigrateDown(t.Context(), pool, set, 0); err != nil {
		t.Fatalf("MigrateDown to 0: %v", err)
	}
	if got := applied(t, pool, "app"); len(got) != 0 || tableExists(t, pool, "a") {
		t.Errorf("after down to 0: versions = %v, table a exists = %v", got, tableExists(t, pool, "a"))
	}
}

func TestMigrateDownStopsAtMigrationWithoutDownFile(t *testing.T) {
	t.Parallel()
	set := db.Migrations{Set: "app", FS: files(map[string]string{
		"001_a.up.sql":   `CREATE TABLE a (x int);`,
		"001_a.down.sql": `DROP TABLE a;`,
		"002_b.up.sql":   `CREATE TABLE b (x int);`,
	})}
	pool := dbtest.Database(t, set)
	if err := db.MigrateDown(t.Context(), pool, set, 0); err == nil {
		t.Fatal("MigrateDown succeeded past a migration without a down file")
	}
	if got := applied(t, pool, "app"); !equal(got, []int{1, 2}) {
		t.Errorf("versions = %v, want [1 2] untouched", got)
	}
}

func TestWithTx(t *testing.T) {
	t.Parallel()
	pool := dbtest.Database(t, db.Migrations{Set: "app", FS: files(map[string]string{
		"001_notes.up.sql": `CREATE TABLE notes (body text PRIMARY KEY);`,
	})})
	has := func(t *testing.T, body string) bool {
		t.Helper()
		var ok bool
		if err := pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM notes WHERE body = $1)`, body).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	insert := func(body string) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			_, err := tx.Exec(context.Background(), `INSERT INTO notes VALUES ($1)`, body)
			return err
		}
	}

	t.Run("commits when fn succeeds", func(t *testing.T) {
		t.Parallel()
		if err := db.WithTx(t.Context(), pool, insert("committed")); err != nil {
			t.Fatal(err)
		}
		if !has(t, "committed") {
			t.Error("row missing after commit")
		}
	})

	t.Run("rolls back and returns fn's error", func(t *testing.T) {
		t.Parallel()
		refused := errors.New("refused")
		err := db.WithTx(t.Context(), pool, func(tx pgx.Tx) error {
			if err := insert("rolled-back")(tx); err != nil {
				return err
			}
			return refused
		})
		if !errors.Is(err, refused) {
			t.Fatalf("err = %v, want it to wrap %v", err, refused)
		}
		if has(t, "rolled-back") {
			t.Error("row of a failed transaction was committed")
		}
	})

	t.Run("rolls back and re-panics when fn panics", func(t *testing.T) {
		t.Parallel()
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Errorf("recovered %v, want the original panic", p)
				}
			}()
			_ = db.WithTx(t.Context(), pool, func(tx pgx.Tx) error {
				if err := insert("panicked")(tx); err != nil {
					return err
				}
				panic("boom")
			})
			t.Error("WithTx returned instead of panicking")
		}()
		if has(t, "panicked") {
			t.Error("row of a panicking transaction was committed")
		}
	})

	t.Run("rolls back even when ctx is cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		err := db.WithTx(ctx, pool, func(tx pgx.Tx) error {
			if err := insert("cancelled")(tx); err != nil {
				return err
			}
			cancel()
			return ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if has(t, "cancelled") {
			t.Error("row of a cancelled transaction was committed")
		}
	})

}
