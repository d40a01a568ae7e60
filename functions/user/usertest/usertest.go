// Package usertest gives tests of the user context a Service on a database of
// their own (real Postgres from $DATABASE_URL, real Redis from $REDIS_URL).
package usertest

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// Env is what a user-context test needs.
type Env struct {
	Service *user.Service
	Pool    *pgxpool.Pool
	Redis   *redis.Client
	Config  user.Config
}

// Password is the password Register gives every account it creates.
const Password = "correct horse battery"

// New returns an Env on a fresh database migrated with the outbox, inbox and
// user migrations, with a new signing key and the default limits (no grace
// for a refresh token's second use), changed by mutate.
func New(t testing.TB, mutate ...func(*user.Config)) Env {
	t.Helper()
	pool := dbtest.Database(t, outbox.Migrations, inbox.Migrations, user.Migrations)
	rdb := dbtest.Redis(t)
	priv, pub, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	cfg := user.Config{
		TokenKey: priv, TokenPublicKey: pub,
		AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 168 * time.Hour,
		LoginMaxFailures: 5, LoginLock: 15 * time.Minute,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := user.Open(context.Background(), pool, rdb, cfg, logging.Discard())
	if err != nil {
		t.Fatalf("user.Open: %v", err)
	}
	return Env{Service: svc, Pool: pool, Redis: rdb, Config: cfg}
}

// Register creates username (email <username>@example.com, password Password).
func (e Env) Register(t testing.TB, username string) user.User {
	t.Helper()
	u, err := e.Service.Register(context.Background(), user.RegisterRequest{
		Username: username, Email: username + "@example.com", Password: Password,
	})
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	return u
}

// Login logs username in with Password.
func (e Env) Login(t testing.TB, username string) user.Tokens {
	t.Helper()
	tok, err := e.Service.Login(context.Background(), user.LoginRequest{Login: username, Password: Password})
	if err != nil {
		t.Fatalf("login %s: %v", username, err)
	}
	return tok
}

// GrantEvent returns a grant command event for userID with grantID and the
// amounts of l, under a fresh event id.
func GrantEvent(t testing.TB, grantID, userID string, l userevents.Limits) event.Event {
	t.Helper()
	return commandEvent(t, userevents.EventQuotaGrantRequested, grantID, userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: grantID, UserID: userID, PlanID: "pro",
		Limits: l})
}

// RevokeEvent returns a revoke command event for grantID of userID, under a
// fresh event id.
func RevokeEvent(t testing.TB, grantID, userID string) event.Event {
	t.Helper()
	return commandEvent(t, userevents.EventQuotaRevokeRequested, grantID, userevents.QuotaRevokeRequested{
		SchemaVersion: 1, GrantID: grantID, UserID: userID,
	})
}

func commandEvent(t testing.TB, typ, subject string, data any) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/billing/test", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Grant applies a grant of l to userID and fails the test unless it is
// granted.
func (e Env) Grant(t testing.TB, grantID, userID string, l userevents.Limits) {
	t.Helper()
	ev := GrantEvent(t, grantID, userID, l)
	var cmd userevents.QuotaGrantRequested
	if err := ev.DataAs(&cmd); err != nil {
		t.Fatal(err)
	}
	reply, err := e.Service.GrantQuota(context.Background(), ev, cmd)
	if err != nil || reply.Type() != userevents.EventQuotaGranted {
		t.Fatalf("grant %s to %s: %v %s", grantID, userID, err, reply.Data())
	}
}

// Admin creates the admin account and returns its access token.
func (e Env) Admin(t testing.TB) (user.Tokens, string) {
	t.Helper()
	if _, err := e.Service.EnsureAdmin(context.Background(), Password); err != nil {
		t.Fatalf("ensure admin: %v", err)
	}
	tok := e.Login(t, user.AdminUsername)
	var id string
	if err := e.Pool.QueryRow(context.Background(), `SELECT id::text FROM users WHERE username = $1`, user.AdminUsername).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return tok, id
}
