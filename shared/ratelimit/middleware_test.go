package ratelimit

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/clientip"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// smallTable is a table with limits small enough to reach in a test.
func smallTable() Table {
	return Table{
		{Rule: Rule{Name: RuleIP, Limit: 6, Window: time.Minute}, Scope: ScopeIP},
		{Rule: Rule{Name: RuleUser, Limit: 4, Window: time.Minute}, Scope: ScopeUser},
		{Rule: Rule{Name: RuleLoginIP, Limit: 2, Window: time.Minute}, Scope: ScopeIP, Route: "POST /api/v1/auth/login"},
		{Rule: Rule{Name: RuleLoginAccount, Limit: 2, Window: time.Minute}, Scope: ScopeKey, Route: "POST /api/v1/auth/login"},
		{Rule: Rule{Name: RuleRegisterIP, Limit: 2, Window: time.Minute, FailClosed: true}, Scope: ScopeIP, Route: "POST /api/v1/auth/register"},
	}
}

type stack struct {
	handler http.Handler
	metrics *metrics.Metrics
	limits  *Limits
	mu      sync.Mutex
	refused []netip.Addr
}

func newStack(t *testing.T, l Limiter, tbl Table) *stack {
	t.Helper()
	m := metrics.New()
	ls, err := NewLimits(l, tbl, m)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{metrics: m, limits: ls}
	resolver, err := clientip.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s.handler = Middleware(ls, MiddlewareOptions{
		ClientIP: resolver.ClientIP,
		UserID: func(r *http.Request) (string, bool) {
			u := r.Header.Get("X-Test-User")
			return u, u != ""
		},
		OnRefused: func(_ context.Context, ip netip.Addr) {
			s.mu.Lock()
			s.refused = append(s.refused, ip)
			s.mu.Unlock()
		},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	return s
}

func (s *stack) do(method, path, ip, user string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = ip + ":40000"
	if user != "" {
		r.Header.Set("X-Test-User", user)
	}
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, r)
	return w
}

func header(t *testing.T, w *httptest.ResponseRecorder, name string) int {
	t.Helper()
	v, err := strconv.Atoi(w.Header().Get(name))
	if err != nil {
		t.Fatalf("header %s = %q", name, w.Header().Get(name))
	}
	return v
}

// TestMiddlewareHeadersAndRefusal checks the RateLimit-* headers of the
// tightest rule, the 429 body and Retry-After, the refusal metric and hook,
// and that user rules apply only with a principal.
func TestMiddlewareHeadersAndRefusal(t *testing.T) {
	t.Parallel()
	r, err := NewRedis(redisClient(t), RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, r, smallTable())

	w := s.do("POST", "/api/v1/auth/login", "198.51.100.1", "")
	if w.Code != http.StatusNoContent || header(t, w, "RateLimit-Limit") != 2 || header(t, w, "RateLimit-Remaining") != 1 {
		t.Fatalf("first login: %d %v", w.Code, w.Header())
	}
	if reset := header(t, w, "RateLimit-Reset"); reset < 60 || reset > 66 {
		t.Fatalf("RateLimit-Reset %d: want about the window (60s) plus a bucket", reset)
	}
	s.do("POST", "/api/v1/auth/login", "198.51.100.1", "")
	w = s.do("POST", "/api/v1/auth/login", "198.51.100.1", "")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("third login: %d, want 429", w.Code)
	}
	var body apierr.Body
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != apierr.RateLimited {
		t.Fatalf("429 body %q (%v)", w.Body.String(), err)
	}
	if ra := header(t, w, "Retry-After"); ra < 1 || ra > 66 {
		t.Fatalf("Retry-After %d", ra)
	}
	if header(t, w, "RateLimit-Limit") != 2 || header(t, w, "RateLimit-Remaining") != 0 {
		t.Fatalf("429 headers %v", w.Header())
	}
	if got := metricValue(s.metrics.RateLimited.WithLabelValues(RuleLoginIP)); got != 1 {
		t.Fatalf("refusals of %s = %v, want 1", RuleLoginIP, got)
	}
	if len(s.refused) != 1 || s.refused[0] != netip.MustParseAddr("198.51.100.1") {
		t.Fatalf("OnRefused calls %v", s.refused)
	}

	// Another route: only the IP rule; the refused login counted nothing.
	w = s.do("GET", "/api/v1/devices", "198.51.100.1", "")
	if w.Code != http.StatusNoContent || header(t, w, "RateLimit-Limit") != 6 || header(t, w, "RateLimit-Remaining") != 3 {
		t.Fatalf("GET devices: %d %v; want the ip rule with 3 left", w.Code, w.Header())
	}
	// With a principal the user rule (4) is tighter than the ip rule.
	w = s.do("GET", "/api/v1/devices", "198.51.100.2", "u1")
	if header(t, w, "RateLimit-Limit") != 4 || header(t, w, "RateLimit-Remaining") != 3 {
		t.Fatalf("with a user: %v; want the user rule", w.Header())
	}
	// The user rule follows the user across addresses.
	for i, ip := range []string{"198.51.100.3", "198.51.100.4", "198.51.100.5", "198.51.100.6"} {
		w = s.do("GET", "/api/v1/devices", ip, "u1")
		if want := i < 3; (w.Code == http.StatusNoContent) != want {
			t.Fatalf("user request %d from %s: %d", i+2, ip, w.Code)
		}
	}
	if got := metricValue(s.metrics.RateLimited.WithLabelValues(RuleUser)); got != 1 {
		t.Fatalf("refusals of %s = %v, want 1", RuleUser, got)
	}
}

// TestCheckLimitsALoginAccount checks the keyed rule a handler applies.
func TestCheckLimitsALoginAccount(t *testing.T) {
	t.Parallel()
	r, err := NewRedis(redisClient(t), RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := NewLimits(r, smallTable(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if _, err := ls.Check(ctx, RuleLoginAccount, "alice"); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	d, err := ls.Check(ctx, RuleLoginAccount, "alice")
	if !apierr.Is(err, apierr.RateLimited) || apierr.As(err).RetryAfter <= 0 || d.Allowed {
		t.Fatalf("third attempt: %+v %v", d, err)
	}
	if _, err := ls.Check(ctx, RuleLoginAccount, "bob"); err != nil {
		t.Fatalf("another account: %v", err)
	}
	if _, err := ls.Check(ctx, "no_such_rule", "x"); err == nil || apierr.Is(err, apierr.RateLimited) {
		t.Fatalf("unknown rule: %v", err)
	}
}

// TestRedisDownFallsBackAndRestores stops a private Redis mid-test: requests
// are still served, the login rule is still enforced by the per-process
// fallback, the outage is logged once and reported in metrics; when Redis is
// back, two processes share counts again.
func TestRedisDownFallsBackAndRestores(t *testing.T) {
	t.Parallel()
	srv := startPrivateRedis(t)
	log, logs := testLogger()
	newProcess := func() (*stack, *Resilient) {
		rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		shared, err := NewRedis(rdb, RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m := metrics.New()
		res, err := NewResilient(shared, NewLocal(), ResilientOptions{Backoff: 100 * time.Millisecond, Log: log, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		s := newStack(t, res, smallTable())
		s.metrics = m
		return s, res
	}
	p1, r1 := newProcess()
	p2, _ := newProcess()
	login := func(p *stack, ip string) int { return p.do("POST", "/api/v1/auth/login", ip, "").Code }

	// Shared: the two processes count together.
	if login(p1, "203.0.113.1") != 204 || login(p2, "203.0.113.1") != 204 || login(p1, "203.0.113.1") != 429 || login(p2, "203.0.113.1") != 429 {
		t.Fatal("with Redis up the two processes did not share the login limit of 2")
	}

	srv.stop()
	start := time.Now()
	if code := p1.do("GET", "/api/v1/devices", "203.0.113.9", "").Code; code != 204 {
		t.Fatalf("with Redis down a request got %d", code)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the first request after the outage took %s", took)
	}
	if !r1.Degraded() {
		t.Fatal("limiter not degraded after a failed call")
	}
	if got := metricValue(p1.metrics.Degraded.WithLabelValues("ratelimit")); got != 1 {
		t.Fatalf("degraded gauge %v, want 1", got)
	}
	// Auth still limited: the fallback enforces 2 per minute per IP.
	codes := []int{login(p1, "203.0.113.2"), login(p1, "203.0.113.2"), login(p1, "203.0.113.2")}
	if codes[0] != 204 || codes[1] != 204 || codes[2] != 429 {
		t.Fatalf("login with Redis down: %v, want [204 204 429]", codes)
	}
	// A fail-closed rule refuses while Redis cannot decide: 503 with a
	// retry hint, not counted against the client (no auto-ban).
	p1.mu.Lock()
	refusedBefore := len(p1.refused)
	p1.mu.Unlock()
	reg := p1.do("POST", "/api/v1/auth/register", "203.0.113.5", "")
	if reg.Code != http.StatusServiceUnavailable || reg.Header().Get("Retry-After") == "" || !strings.Contains(reg.Body.String(), `"unavailable"`) {
		t.Fatalf("register with Redis down: %d %q %s, want 503 unavailable with Retry-After", reg.Code, reg.Header().Get("Retry-After"), reg.Body)
	}
	p1.mu.Lock()
	if len(p1.refused) != refusedBefore {
		t.Fatal("a refusal for the limiter's outage was counted against the client")
	}
	p1.mu.Unlock()
	time.Sleep(250 * time.Millisecond) // past the backoff: a probe fails again, no new log line
	login(p1, "203.0.113.3")
	if code := p2.do("GET", "/api/v1/devices", "203.0.113.9", "").Code; code != 204 {
		t.Fatalf("with Redis down a request to the second process got %d", code)
	}
	if n := strings.Count(logs.String(), "rate limiter degraded: redis unreachable"); n != 2 { // once per process
		t.Fatalf("degraded logged %d times, want once per process (2):\n%s", n, logs.String())
	}

	srv.start()
	deadline := time.Now().Add(3 * time.Second)
	for r1.Degraded() || p2.do("GET", "/healthz", "203.0.113.9", "").Code != 204 {
		if time.Now().After(deadline) {
			t.Fatal("limiter not restored within 3s of Redis coming back")
		}
		p1.do("GET", "/healthz", "203.0.113.9", "")
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "rate limiter restored") {
		t.Fatalf("restoration not logged:\n%s", logs.String())
	}
	if got := metricValue(p1.metrics.Degraded.WithLabelValues("ratelimit")); got != 0 {
		t.Fatalf("degraded gauge %v after restoration, want 0", got)
	}
	// Shared again (the restarted Redis is empty; p2 may still be degraded
	// until its own probe, so make sure both are up first).
	for i := 0; i < 20; i++ {
		p2.do("GET", "/healthz", "203.0.113.9", "")
		time.Sleep(20 * time.Millisecond)
	}
	if login(p1, "203.0.113.4") != 204 || login(p2, "203.0.113.4") != 204 || login(p2, "203.0.113.4") != 429 || login(p1, "203.0.113.4") != 429 {
		t.Fatal("after Redis came back the processes did not share the login limit again")
	}
}

// TestDefaultTableIsSpec pins the default limits the README documents.
func TestDefaultTableIsSpec(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		RuleIP:           "ip  120/1m0s",
		RuleUser:         "user  300/1m0s",
		RuleLoginIP:      "ip POST /api/v1/auth/login 5/1m0s",
		RuleLoginAccount: "key POST /api/v1/auth/login 5/1m0s",
		RuleRegisterIP:   "ip POST /api/v1/auth/register 3/1m0s",
		RuleDeviceCreate: "user POST /api/v1/devices 30/1m0s",
		RuleOrderCreate:  "user POST /api/v1/orders 5/5m0s",
		RuleAppCreate:    "user POST /api/v1/apps 20/5m0s",
	}
	tbl := DefaultTable()
	if err := tbl.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(tbl) != len(want) {
		t.Fatalf("%d rules, want %d", len(tbl), len(want))
	}
	for _, p := range tbl {
		got := string(p.Scope) + " " + p.Route + " " + strconv.Itoa(p.Limit) + "/" + p.Window.String()
		if got != want[p.Name] {
			t.Errorf("%s = %q, want %q", p.Name, got, want[p.Name])
		}
	}
}

// TestTableOverrides checks the CLOUDPHONE_RATE_LIMITS file: JSON and YAML
// override and add rules; a bad file is an error.
func TestTableOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"rules":[{"name":"auth_login_ip","limit":10},{"name":"export","scope":"user","route":"POST /api/v1/exports","limit":2,"window":"1h"}]}`)
	tbl, err := LoadTable(config.FromMap(map[string]string{EnvTable: good}))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := NewLimits(NewLocal(), tbl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := ls.Policy(RuleLoginIP); p.Limit != 10 || p.Window != time.Minute || p.Route != "POST /api/v1/auth/login" {
		t.Fatalf("overridden login rule %+v", p)
	}
	if p, ok := ls.Policy("export"); !ok || p.Window != time.Hour || p.Scope != ScopeUser {
		t.Fatalf("added rule %+v", p)
	}
	yml := write("good.yaml", "rules:\n  - name: ip\n    limit: 1000\n    window: 2m\n")
	if tbl, err := LoadTable(config.FromMap(map[string]string{EnvTable: yml})); err != nil || tbl[0].Limit != 1000 || tbl[0].Window != 2*time.Minute {
		t.Fatalf("yaml: %v %+v", err, tbl)
	}
	if tbl, err := LoadTable(config.FromMap(nil)); err != nil || len(tbl) != len(DefaultTable()) {
		t.Fatalf("no file: %v", err)
	}
	for name, body := range map[string]string{
		"not json":        `{"rules": [`,
		"unknown field":   `{"rules":[{"name":"ip","limt":5}]}`,
		"bad window":      `{"rules":[{"name":"ip","window":"soon"}]}`,
		"zero window new": `{"rules":[{"name":"new","scope":"ip","limit":5}]}`,
		"bad scope":       `{"rules":[{"name":"new","scope":"planet","limit":5,"window":"1m"}]}`,
		"bad route":       `{"rules":[{"name":"new","scope":"ip","route":"POST","limit":5,"window":"1m"}]}`,
		"limit too large": `{"rules":[{"name":"ip","limit":70000}]}`,
		"no name":         `{"rules":[{"limit":5}]}`,
	} {
		p := write(strings.ReplaceAll(name, " ", "_")+".json", body)
		if _, err := LoadTable(config.FromMap(map[string]string{EnvTable: p})); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := LoadTable(config.FromMap(map[string]string{EnvTable: filepath.Join(dir, "missing.json")})); err == nil {
		t.Error("missing file: no error")
	}
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// slowLimiter answers like its limiter, after a delay: Redis under load.
type slowLimiter struct {
	Limiter
	delay time.Duration
}

func (s slowLimiter) AllowAll(ctx context.Context, reqs []Request) ([]Decision, error) {
	time.Sleep(s.delay)
	return s.Limiter.AllowAll(ctx, reqs)
}

// A Redis that answers slowly (as at a cold start, when a burst opens its
// connections) is waited for: the per-process fallback never decides a
// request Redis also counted, so a burst admits exactly the limit.
func TestSlowRedisNeverLetsABurstPastTheLimit(t *testing.T) {
	t.Parallel()
	shared, err := NewRedis(redisClient(t), RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := NewResilient(slowLimiter{shared, 120 * time.Millisecond}, NewLocal(), ResilientOptions{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, res, smallTable())
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if s.do("POST", "/api/v1/auth/register", "198.51.100.7", "").Code == http.StatusNoContent {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 2 {
		t.Fatalf("a burst of 40 against a limit of 2 on a slow Redis admitted %d", n)
	}
}
