// Package devicetest gives tests of the device context a Service on a
// database of its own (real Postgres from $DATABASE_URL) whose quota calls go
// over HTTP, with service tokens, to a real user context (usertest, real
// Postgres and Redis) served by an httptest server. It composes two contexts,
// so it lives beside the other cross-context tests, outside both.
package devicetest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/userquotainternal"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Limits and Usage are the user context's quota types the device context's
// tests grant and read, named here so those tests need not import the user
// context.
type (
	Limits = userevents.Limits
	Usage  = user.Usage
)

// Env is what a device-context test needs.
type Env struct {
	Service *device.Service
	Pool    *pgxpool.Pool
	Users   usertest.Env
	Tickets *device.Tickets
	// QuotaURL is the user context's quota API the Service calls.
	QuotaURL string
}

// Option changes the Options New opens the Service with.
type Option func(*device.Options)

// Ports sets the ADB port pool.
func Ports(first, last int) Option {
	return func(o *device.Options) { o.Ports = device.PortRange{First: first, Last: last} }
}

// Node sets the node registered at start.
func Node(cpu, memoryMB int) Option {
	return func(o *device.Options) { o.Node.CPUCores, o.Node.MemoryMB = cpu, memoryMB }
}

// Placement sets the placement strategy (device.PlacementSpread or
// device.PlacementPack).
func Placement(strategy string) Option {
	return func(o *device.Options) { o.Placement = strategy }
}

// New returns an Env: a fresh device database, a fresh user context behind
// an httptest server running the user-quota-internal function, and a
// Service calling it with a device-context service token.
func New(t testing.TB, opts ...Option) Env {
	t.Helper()
	users := usertest.New(t)
	priv, pub, err := servicetoken.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	pubKey, err := servicetoken.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	privKey, err := servicetoken.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	log := logging.Discard()
	fn := userquotainternal.New(users.Service, servicetoken.NewVerifier(pubKey, servicetoken.VerifierOptions{}), log)
	srv := httptest.NewServer(http.HandlerFunc(fn.Handle))
	t.Cleanup(srv.Close)
	minter := servicetoken.NewMinter(servicetoken.ContextDevice, privKey, servicetoken.MinterOptions{Redis: users.Redis, Log: log})
	quota, err := device.NewQuotaClient(srv.URL, servicetoken.Client(minter, servicetoken.ContextUser))
	if err != nil {
		t.Fatal(err)
	}
	tickets, err := device.NewTickets("", priv, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	o := device.Options{
		Quota: quota, Tickets: tickets, Ports: device.PortRange{First: 28000, Last: 28999},
		Node:  device.NodeConfig{Name: "local", DockerHost: "unix:///var/run/docker.sock", ADBHost: "127.0.0.1", CPUCores: 64, MemoryMB: 262144},
		Image: device.DefaultImage, Images: []string{"cloudphone/phone-standin:latest"}, DefaultStorageGB: 8, Log: log,
	}
	for _, opt := range opts {
		opt(&o)
	}
	pool := dbtest.Database(t, outbox.Migrations, inbox.Migrations, device.Migrations)
	svc, err := device.Open(context.Background(), pool, o)
	if err != nil {
		t.Fatalf("device.Open: %v", err)
	}
	return Env{Service: svc, Pool: pool, Users: users, Tickets: tickets, QuotaURL: srv.URL}
}

// Account is a registered user.
type Account struct {
	ID        string
	Principal auth.Principal
	// Token is a valid access token of the user.
	Token string
}

// User registers username and logs it in.
func (e Env) User(t testing.TB, username string) Account {
	t.Helper()
	u := e.Users.Register(t, username)
	tok := e.Users.Login(t, username)
	p, err := e.Users.Service.Verifier().Verify(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatalf("verify token of %s: %v", username, err)
	}
	return Account{ID: u.ID, Principal: p, Token: tok.AccessToken}
}

// Admin returns a principal with the admin role and its permissions.
func Admin() auth.Principal {
	return auth.Principal{UserID: "00000000-0000-4000-8000-000000000001", Username: "admin",
		Roles: []string{user.RoleUser, user.RoleAdmin}, Permissions: user.Permissions([]string{user.RoleAdmin})}
}

// Grant adds l to userID's quota (a plan grant), on top of the free tier.
func (e Env) Grant(t testing.TB, userID string, l userevents.Limits) {
	t.Helper()
	ctx := context.Background()
	grantID := events.NewID()
	cmd := userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: grantID, UserID: userID, PlanID: "test",
		Limits: l}
	ev, err := events.New(ctx, userevents.EventQuotaGrantRequested, "/test/billing", grantID, cmd)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := e.Users.Service.GrantQuota(ctx, ev, cmd)
	if err != nil || reply.Type() != userevents.EventQuotaGranted {
		t.Fatalf("grant quota to %s: %v %s", userID, err, reply.Data())
	}
}

// Quota returns userID's quota as the user context holds it.
func (e Env) Quota(t testing.TB, userID string) user.Quota {
	t.Helper()
	q, err := e.Users.Service.Quota(context.Background(), userID)
	if err != nil {
		t.Fatalf("quota of %s: %v", userID, err)
	}
	return q
}

// Report builds a device-runtime report of type typ about deviceID at at.
func Report(t testing.TB, typ, deviceID string, at time.Time, mod ...func(*deviceevents.RuntimeReport)) event.Event {
	t.Helper()
	r := deviceevents.RuntimeReport{SchemaVersion: 1, DeviceID: deviceID, ContainerID: "c-" + deviceID[:8], At: at}
	for _, m := range mod {
		m(&r)
	}
	e, err := events.New(context.Background(), typ, "/cloudphone/device/device-runtime", deviceID, r)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Apply applies report e, failing the test on an error.
func (e Env) Apply(t testing.TB, ev event.Event) {
	t.Helper()
	var r deviceevents.RuntimeReport
	if err := ev.DataAs(&r); err != nil {
		t.Fatal(err)
	}
	if err := e.Service.ApplyReport(context.Background(), ev, r); err != nil {
		t.Fatalf("apply %s: %v", ev.Type(), err)
	}
}

// Outbox returns the data of the events of type typ about subject in the
// outbox, oldest first, decoded as JSON objects.
func (e Env) Outbox(t testing.TB, typ, subject string) []map[string]any {
	t.Helper()
	rows, err := e.Pool.Query(context.Background(),
		`SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' FROM outbox WHERE type = $1 AND subject = $2 ORDER BY id`, typ, subject)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
