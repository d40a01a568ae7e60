// Package db opens a context's Postgres database: it creates the database when
// it is missing, applies the context's embedded migrations under an advisory
// lock, and hands back a pgx pool. WithTx runs one transaction on it.
package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaxConns is the pool size when the URL has no pool_max_conns.
const DefaultMaxConns = 10

// Postgres error codes Open handles.
const (
	codeInvalidCatalogName = "3D000" // the database does not exist
	codeDuplicateDatabase  = "42P04" // another process created it first
	codeUniqueViolation    = "23505" // ditto, when both inserted into pg_database at once
)

// Open returns a pool on database, a database on the server of baseURL (a
// postgres URL or keyword/value string; its own database name is replaced).
// When database does not exist Open creates it through baseURL's database,
// tolerating another process creating it at the same moment. It then applies
// each set's pending up migrations, in set order and version order, under a
// session-level advisory lock (see Migrations). The pool holds at most
// DefaultMaxConns connections unless baseURL sets pool_max_conns. On failure
// nothing is left open; migrations applied before the failing one stay applied.
// The caller closes the pool.
func Open(ctx context.Context, baseURL, database string, sets ...Migrations) (*pgxpool.Pool, error) {
	if database == "" {
		return nil, errors.New("open database: no database name")
	}
	cfg, err := poolConfig(baseURL)
	if err != nil {
		return nil, err
	}
	base := cfg.ConnConfig.Copy()
	cfg.ConnConfig.Database = database
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", database, err)
	}
	loaded, err := loadSets(sets)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate database %s: %w", database, err)
	}
	// The pool's first connection tells whether the database exists (it
	// stays in the pool for what follows) and, on the usual start, that its
	// migrations are applied: one round trip after the connection, the last
	// thing a process waits for before it is ready.
	var upToDate bool
	if len(sets) > 0 {
		upToDate, err = current(ctx, pool, sets, loaded)
	} else {
		err = pool.Ping(ctx)
	}
	if err != nil {
		var connErr *pgconn.ConnectError
		var pgErr *pgconn.PgError
		switch {
		case hasCode(err, codeInvalidCatalogName):
			if err := createDatabase(ctx, base, database); err != nil {
				pool.Close()
				return nil, err
			}
		case errors.As(err, &connErr) || !errors.As(err, &pgErr):
			pool.Close()
			return nil, fmt.Errorf("connect to database %s: %w", database, err)
		}
		// Any other answer of the server (no schema_migrations table yet,
		// say) leaves the locked path to decide.
	}
	if upToDate || len(sets) == 0 {
		return pool, nil
	}
	if err := migrate(ctx, pool, sets, loaded); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate database %s: %w", database, err)
	}
	return pool, nil
}

// poolConfig parses baseURL and applies the platform's pool defaults.
func poolConfig(baseURL string) (*pgxpool.Config, error) {
	raw, err := pgconn.ParseConfig(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	_, sized := raw.RuntimeParams["pool_max_conns"]
	cfg, err := pgxpool.ParseConfig(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !sized {
		cfg.MaxConns = DefaultMaxConns
	}
	return cfg, nil
}

// createDatabase creates database through base's database; another process
// creating it at the same time is fine.
func createDatabase(ctx context.Context, base *pgx.ConnConfig, database string) error {
	admin, err := pgx.ConnectConfig(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to %s to create database %s: %w", base.Database, database, err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize())
	if err != nil && !hasCode(err, codeDuplicateDatabase, codeUniqueViolation) {
		return fmt.Errorf("create database %s: %w", database, err)
	}
	return nil
}

// hasCode reports whether err is a Postgres error with one of codes.
func hasCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}
