// Package dbtest gives each test a database of its own on the Postgres server
// named by $DATABASE_URL, and a client of the Redis server $REDIS_URL names.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/db"
)

// EnvURL is the environment variable naming the test server.
const EnvURL = "DATABASE_URL"

// BaseURL returns $DATABASE_URL, failing the test when it is unset: a test
// that needs Postgres never skips.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Fatalf("%s is not set: this test needs a Postgres server, e.g. %s=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
			EnvURL, EnvURL)
	}
	return u
}

// Name returns a fresh database name (t_ and 16 hex digits) that no other test
// uses.
func Name(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random database name: %v", err)
	}
	return "t_" + hex.EncodeToString(b[:])
}

// Database creates a uniquely named database from $DATABASE_URL, applies sets
// to it with db.Open and returns its pool. When the test ends the pool is
// closed and the database dropped, even if connections are still open.
func Database(t testing.TB, sets ...db.Migrations) *pgxpool.Pool {
	t.Helper()
	base := BaseURL(t)
	name := Name(t)
	t.Cleanup(func() { Drop(t, name) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := db.Open(ctx, base, name, sets...)
	if err != nil {
		t.Fatalf("open test database %s: %v", name, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Drop drops database name on the $DATABASE_URL server, forcing its
// connections closed; a missing database is fine. It reports a failure with
// t.Errorf.
func Drop(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(BaseURL(t))
	if err != nil {
		t.Errorf("drop test database %s: %v", name, err)
		return
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		t.Errorf("drop test database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop test database %s: %v", name, err)
	}
}

// Redis returns a client for $REDIS_URL with its options changed by mutate,
// closed when t ends, failing t when the variable is unset or the server does
// not answer.
func Redis(t testing.TB, mutate ...func(*redis.Options)) *redis.Client {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Fatal("REDIS_URL is not set: this test needs a Redis server, e.g. REDIS_URL=redis://127.0.0.1:6379/0")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse REDIS_URL: %v", err)
	}
	for _, m := range mutate {
		m(opt)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at REDIS_URL does not answer: %v", err)
	}
	return rdb
}
