package db

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrations is one set of numbered schema migrations, such as a context's own
// tables or the shared outbox. FS holds, at its root, files named
// NNN_name.up.sql and, optionally, NNN_name.down.sql, where NNN is the version
// (a positive integer, unique within the set). Other files are ignored.
//
// Versions are tracked per set in the table schema_migrations(set, version,
// name, applied_at), so sets are independent of each other. Each migration runs
// in its own transaction together with its schema_migrations row: it is either
// applied and recorded, or not at all. Everything runs under one
// session-level advisory lock per database, so processes starting together
// apply each migration once.
type Migrations struct {
	Set string
	FS  fs.FS
}

// migration is one version of a set.
type migration struct {
	version  int
	name     string // the part between NNN_ and .up.sql
	up, down string // SQL; down is empty when there is no down file
	hasDown  bool
}

var migrationFile = regexp.MustCompile(`^([0-9]+)_(.+)\.(up|down)\.sql$`)

// load reads and checks the set's files, returning its migrations by version.
func (m Migrations) load() ([]migration, error) {
	if m.Set == "" {
		return nil, errors.New("migration set has no name")
	}
	if m.FS == nil {
		return nil, fmt.Errorf("migration set %s has no files", m.Set)
	}
	entries, err := fs.ReadDir(m.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read migration set %s: %w", m.Set, err)
	}
	byVersion := map[int]*migration{}
	for _, e := range entries {
		parts := migrationFile.FindStringSubmatch(e.Name())
		if e.IsDir() || parts == nil {
			continue
		}
		version, err := strconv.Atoi(parts[1])
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("migration set %s: %s: version must be a positive integer", m.Set, e.Name())
		}
		body, err := fs.ReadFile(m.FS, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s/%s: %w", m.Set, e.Name(), err)
		}
		mg := byVersion[version]
		if mg == nil {
			mg = &migration{version: version, name: parts[2]}
			byVersion[version] = mg
		}
		if mg.name != parts[2] {
			return nil, fmt.Errorf("migration set %s: version %d has two names, %q and %q", m.Set, version, mg.name, parts[2])
		}
		switch parts[3] {
		case "up":
			mg.up = string(body)
		case "down":
			mg.down, mg.hasDown = string(body), true
		}
	}
	out := make([]migration, 0, len(byVersion))
	for _, mg := range byVersion {
		if mg.up == "" {
			return nil, fmt.Errorf("migration set %s: version %d (%s) has no up file", m.Set, mg.version, mg.name)
		}
		out = append(out, *mg)
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

const (
	// lockMigrations serialises migrations per database; advisory locks are
	// scoped to the current database.
	lockMigrations   = `SELECT pg_advisory_lock(hashtext('cloudphone.schema_migrations'))`
	unlockMigrations = `SELECT pg_advisory_unlock(hashtext('cloudphone.schema_migrations'))`

	createSchemaMigrations = `
CREATE TABLE IF NOT EXISTS schema_migrations (
	set        text        NOT NULL,
	version    int         NOT NULL,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (set, version)
)`

	selectAppliedVersions = `SELECT version FROM schema_migrations WHERE set = $1`
	insertAppliedVersion  = `INSERT INTO schema_migrations (set, version, name) VALUES ($1, $2, $3)`
	deleteAppliedVersion  = `DELETE FROM schema_migrations WHERE set = $1 AND version = $2`
)

// loadSets reads and checks every set's files.
func loadSets(sets []Migrations) ([][]migration, error) {
	loaded := make([][]migration, len(sets))
	seen := map[string]bool{}
	for i, set := range sets {
		if seen[set.Set] {
			return nil, fmt.Errorf("migration set %s given twice", set.Set)
		}
		seen[set.Set] = true
		ms, err := set.load()
		if err != nil {
			return nil, err
		}
		loaded[i] = ms
	}
	return loaded, nil
}

// migrate applies every set's pending up migrations (loaded by loadSets).
func migrate(ctx context.Context, pool *pgxpool.Pool, sets []Migrations, loaded [][]migration) error {
	return withMigrationLock(ctx, pool, func(conn *pgx.Conn) error {
		for i, set := range sets {
			applied, err := appliedVersions(ctx, conn, set.Set)
			if err != nil {
				return err
			}
			for _, mg := range loaded[i] {
				if applied[mg.version] {
					continue
				}
				if err := runStep(ctx, conn, mg.up, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, insertAppliedVersion, set.Set, mg.version, mg.name)
					return err
				}); err != nil {
					return fmt.Errorf("apply migration %s %03d_%s: %w", set.Set, mg.version, mg.name, err)
				}
			}
		}
		return nil
	})
}

// current reports whether every migration of sets is already applied, with
// one query in one round trip and no lock. It returns the query's error:
// a database that does not exist, or no schema_migrations table yet, says
// no (the caller tells them apart).
func current(ctx context.Context, pool *pgxpool.Pool, sets []Migrations, loaded [][]migration) (bool, error) {
	names := make([]string, len(sets))
	for i, set := range sets {
		names[i] = set.Set
	}
	// QueryExecModeExec sends the query and its parameter in one round trip,
	// where the default (prepare, then execute) takes two: this is the query a
	// process waits for before it is ready.
	rows, err := pool.Query(ctx, `SELECT set, version FROM schema_migrations WHERE set = ANY($1)`, pgx.QueryExecModeExec, names)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	applied := map[string]map[int]bool{}
	for rows.Next() {
		var set string
		var version int
		if err := rows.Scan(&set, &version); err != nil {
			return false, err
		}
		if applied[set] == nil {
			applied[set] = map[int]bool{}
		}
		applied[set][version] = true
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	for i, set := range sets {
		for _, mg := range loaded[i] {
			if !applied[set.Set][mg.version] {
				return false, nil
			}
		}
	}
	return true, nil
}

// MigrateDown reverts set's applied migrations above version to, newest
// first, each by its down file in its own transaction with the removal of its
// schema_migrations row, under the same advisory lock as Open. It fails
// without reverting anything further at the first migration that has no down
// file or whose down SQL fails; to 0 reverts the whole set.
func MigrateDown(ctx context.Context, pool *pgxpool.Pool, set Migrations, to int) error {
	ms, err := set.load()
	if err != nil {
		return err
	}
	return withMigrationLock(ctx, pool, func(conn *pgx.Conn) error {
		applied, err := appliedVersions(ctx, conn, set.Set)
		if err != nil {
			return err
		}
		known := map[int]migration{}
		for _, mg := range ms {
			known[mg.version] = mg
		}
		versions := make([]int, 0, len(applied))
		for v := range applied {
			if v > to {
				versions = append(versions, v)
			}
		}
		slices.Sort(versions)
		slices.Reverse(versions)
		for _, v := range versions {
			mg, ok := known[v]
			if !ok || !mg.hasDown {
				return fmt.Errorf("revert migration %s %03d: no down file", set.Set, v)
			}
			if err := runStep(ctx, conn, mg.down, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, deleteAppliedVersion, set.Set, v)
				return err
			}); err != nil {
				return fmt.Errorf("revert migration %s %03d_%s: %w", set.Set, v, mg.name, err)
			}
		}
		return nil
	})
}

// withMigrationLock runs fn on a connection of its own holding the migration
// lock, with schema_migrations in place. A connection whose unlock fails is
// closed rather than returned to the pool, which releases the lock.
func withMigrationLock(ctx context.Context, pool *pgxpool.Pool, fn func(*pgx.Conn) error) (err error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire migration connection: %w", err)
	}
	defer pc.Release()
	conn := pc.Conn()
	if _, err := conn.Exec(ctx, lockMigrations); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), unlockMigrations); uerr != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, createSchemaMigrations); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return fn(conn)
}

func appliedVersions(ctx context.Context, conn *pgx.Conn, set string) (map[int]bool, error) {
	rows, err := conn.Query(ctx, selectAppliedVersions, set)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations of %s: %w", set, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read applied migrations of %s: %w", set, err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// runStep runs script (possibly several statements) and record in one
// transaction.
func runStep(ctx context.Context, conn *pgx.Conn, script string, record func(pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	// Without arguments pgx uses the simple protocol, which runs a script of
	// several statements.
	if _, err := tx.Exec(ctx, script); err != nil {
		return errors.Join(err, rollback(ctx, tx))
	}
	if err := record(tx); err != nil {
		return errors.Join(err, rollback(ctx, tx))
	}
	return tx.Commit(ctx)
}

// Embedded returns the migration set named set whose files are in the
// folder dir of fsys (an embed.FS holding "dir/*.sql"). It panics when dir
// cannot be opened, which for an embedded folder is a build mistake.
func Embedded(set string, fsys fs.FS, dir string) Migrations {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("migrations %s: %v", set, err))
	}
	return Migrations{Set: set, FS: sub}
}
