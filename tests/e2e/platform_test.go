// Package e2e drives the running local platform through its public HTTP API,
// on real Postgres and Redis (DATABASE_URL and REDIS_URL; make test starts
// private ones).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/assembly/catalog"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/infra/local/broker"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// subscriberName is a test-only event function subscribed to
// cloudphone.user.registered. It records each event once, with the inbox, and
// counts every delivery attempt; it can be told to fail.
const subscriberName = "e2e-subscriber"

var subscriberMigrations = db.Migrations{Set: "e2e", FS: fstest.MapFS{
	"001_received.up.sql": {Data: []byte(`CREATE TABLE received (
		event_id text PRIMARY KEY, subject text NOT NULL, correlation text NOT NULL, event jsonb NOT NULL)`)},
}}

type subscriber struct {
	fail     atomic.Bool
	attempts atomic.Int64
	pool     atomic.Pointer[pgxpool.Pool]
}

func (s *subscriber) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	s.attempts.Add(1)
	if s.fail.Load() {
		return nil, errors.New("subscriber is down")
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	corr, _ := e.Extensions()["correlationid"].(string)
	return nil, db.WithTx(ctx, s.pool.Load(), func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil || !first {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO received (event_id, subject, correlation, event) VALUES ($1, $2, $3, $4)`,
			e.ID(), e.Subject(), corr, raw)
		return err
	})
}

func (s *subscriber) entry() function.Entry {
	return function.Entry{
		Spec: function.Spec{Name: subscriberName, Context: "e2e", Kind: function.KindEvent,
			Consumes: []string{userevents.EventRegistered}},
		Build: func(ctx context.Context, r *process.Resources) (any, error) {
			pool, err := r.Postgres(ctx, "e2e_subscriber", inbox.Migrations, subscriberMigrations)
			if err != nil {
				return nil, err
			}
			s.pool.Store(pool)
			return s, nil
		},
	}
}

// received returns how many distinct events the subscriber recorded for
// subject; -1 when its database cannot be read right now (callers poll).
func (s *subscriber) received(t testing.TB, subject string) (count int, raw []byte) {
	t.Helper()
	err := s.pool.Load().QueryRow(context.Background(),
		`SELECT count(*), coalesce(max(event::text), '') FROM received WHERE subject = $1`, subject).Scan(&count, &raw)
	if err != nil {
		t.Logf("read the subscriber's records: %v", err)
		return -1, nil
	}
	return count, raw
}

// env is one platform's identity across restarts: its database prefix and
// data folder.
type env struct {
	prefix  string
	dataDir string
	// limits is the rate-limit override file: generous by default, so that
	// tests of other things are not refused; "" keeps the default table.
	limits string
	// extra is more configuration for the platform.
	extra map[string]string
	// adminPassword is the admin account's (generated when empty).
	adminPassword string
}

func newEnv(t testing.TB) env {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := env{prefix: "e2e_" + hex.EncodeToString(b[:]) + "_", dataDir: t.TempDir()}
	e.limits = limitsFile(t, e.dataDir, nil)
	t.Cleanup(func() { dropDatabases(t, e.prefix) })
	return e
}

func (e env) config() map[string]string {
	m := map[string]string{
		"CLOUDPHONE_DATABASE_PREFIX": e.prefix,
		"CLOUDPHONE_REDIS_PREFIX":    e.prefix,
		"CLOUDPHONE_RATE_LIMITS":     e.limits,
	}
	// The S3-compatible store devenv started (make test).
	for _, k := range []string{"S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_REGION"} {
		if v := os.Getenv(k); v != "" {
			m[k] = v
		}
	}
	maps.Copy(m, e.extra)
	return m
}

func mustEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the tests with `make test`, which starts Postgres and Redis", name)
	}
	return v
}

// running is a started platform that stops when the test ends, unless the
// test stopped it first.
type running struct {
	*local.Platform
	stopped bool
}

// stop shuts the platform down now, as Ctrl-C or SIGTERM would.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.stopped = true
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// start runs the whole platform: every catalog function plus sub.
func start(t testing.TB, e env, sub *subscriber) *running {
	t.Helper()
	return startWith(t, e, sub, mustEnv(t, "DATABASE_URL"))
}

// startEntries is start hosting entries (and sub) instead of every function.
func startEntries(t testing.TB, e env, sub *subscriber, entries []function.Entry) *running {
	t.Helper()
	return startOn(t, e, sub, mustEnv(t, "DATABASE_URL"), entries)
}

// startWith is start on the Postgres server at databaseURL.
func startWith(t testing.TB, e env, sub *subscriber, databaseURL string) *running {
	t.Helper()
	return startOn(t, e, sub, databaseURL, catalog.Entries())
}

func startOn(t testing.TB, e env, sub *subscriber, databaseURL string, entries []function.Entry) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := local.Start(ctx, local.Options{
		Config: local.Config{
			Addr:          "127.0.0.1:0",
			DataDir:       e.dataDir,
			DatabaseURL:   databaseURL,
			RedisURL:      mustEnv(t, "REDIS_URL"),
			TriggersDir:   "../../triggers",
			AdminPassword: e.adminPassword,
		},
		Env:      config.FromMap(e.config()),
		Entries:  append(entries, sub.entry()),
		Declared: append(catalogSpecs(), sub.entry().Spec),
		Extra: []broker.Trigger{{
			Name:       "e2e-user-registered",
			Subscriber: subscriberName,
			Filters:    []broker.Filter{{Exact: map[string]string{"type": userevents.EventRegistered}}},
			Delivery: broker.Delivery{Retry: 50, BackoffPolicy: broker.BackoffLinear,
				BackoffDelay: 200 * time.Millisecond, Timeout: 5 * time.Second, DeadLetterSink: catalog.DeadLetter},
		}},
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bootstrap: userfunctions.Bootstrap(io.Discard),
	})
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	r := &running{Platform: p}
	t.Cleanup(func() {
		if !r.stopped {
			_ = p.Shutdown(context.Background())
		}
	})
	return r
}

func dropDatabases(t testing.TB, prefix string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Logf("drop test databases: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	if err != nil {
		t.Logf("drop test databases: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Logf("drop test databases: %v", err)
		return
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", n, err)
		}
	}
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func call(t testing.TB, method, url string, body any, out any, header ...string) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAgainstReference(t, req, resp, raw)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type registered struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

func register(t testing.TB, base, username string) registered {
	t.Helper()
	var u registered
	status := call(t, "POST", base+"/api/v1/auth/register", map[string]string{
		"username": username, "email": username + "@example.com", "password": "correct horse battery",
	}, &u)
	if status != http.StatusCreated || u.ID == "" {
		t.Fatalf("register %s: status %d, %+v", username, status, u)
	}
	return u
}

func decodeJSON(resp *http.Response, out any) error {
	return json.NewDecoder(resp.Body).Decode(out)
}

// catalogSpecs are the specs of every function of the platform.
func catalogSpecs() []function.Spec {
	var specs []function.Spec
	for _, e := range catalog.Entries() {
		specs = append(specs, e.Spec)
	}
	return specs
}

// producerOf names a context the catalog lets send typ: the sender whose
// token an event of that type is posted with, as its outbox relay would.
func producerOf(t testing.TB, typ string) string {
	t.Helper()
	policy := function.EventPolicy(catalogSpecs())
	for _, s := range policy.Senders() {
		if policy.Allows(s, typ) {
			return s
		}
	}
	t.Fatalf("no context may send %s", typ)
	return ""
}

// authorize gives req the sender token sender would send to audience (the
// broker, or a function's name), signed with the platform's key.
func (r *running) authorize(t testing.TB, req *http.Request, sender, audience string) {
	t.Helper()
	if err := r.Resources().EventSigner.Authorize(req, sender, audience); err != nil {
		t.Fatal(err)
	}
}

// sendEvent sends e to the broker's ingress as its producer would and returns
// the status the broker answered.
func (r *running) sendEvent(t testing.TB, e event.Event) int {
	t.Helper()
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), r.URL()+"/broker/cloudphone", e)
	if err != nil {
		t.Fatal(err)
	}
	r.authorize(t, req, producerOf(t, e.Type()), eventauth.BrokerAudience)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
