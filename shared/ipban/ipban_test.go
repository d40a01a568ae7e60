package ipban

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/clientip"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
)

type fixture struct {
	rdb  *redis.Client
	list *Denylist
	ctx  context.Context
}

func setup(t *testing.T, opt Options) fixture {
	t.Helper()
	rdb := dbtest.Redis(t)
	opt.Prefix = fmt.Sprintf("test:ipban:%s:%d:", strings.ReplaceAll(t.Name(), "/", "."), time.Now().UnixNano())
	opt.Log = slog.New(slog.DiscardHandler)
	d, err := New(rdb, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), opt.Prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	return fixture{rdb: rdb, list: d, ctx: context.Background()}
}

func (f fixture) banned(addr string) bool {
	_, b := f.list.Banned(f.ctx, netip.MustParseAddr(addr))
	return b
}

// TestDenyListMatchesExactAddressesAndRanges covers configured and Redis
// entries, IPv4 and IPv6, and removal.
func TestDenyListMatchesExactAddressesAndRanges(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{Static: StaticFromConfig(config.FromMap(map[string]string{EnvDenyList: "192.0.2.1, 198.51.100.0/24,2001:db8:bad::/48"}))})
	if _, err := f.list.Add(f.ctx, "203.0.113.9", "scraping", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.list.Add(f.ctx, "100.64.0.0/10", "abuse", 0); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"192.0.2.1":          true,
		"192.0.2.2":          false,
		"198.51.100.200":     true,
		"198.51.101.1":       false,
		"2001:db8:bad:1::5":  true,
		"2001:db8:bae::1":    false,
		"203.0.113.9":        true,
		"203.0.113.10":       false,
		"100.127.255.255":    true,
		"::ffff:203.0.113.9": true,
	} {
		if got := f.banned(addr); got != want {
			t.Errorf("Banned(%s) = %v, want %v", addr, got, want)
		}
	}
	entries, err := f.list.List(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Source+" "+e.Range.String()+" "+e.Reason)
	}
	want := "config 192.0.2.1/32 |config 198.51.100.0/24 |config 2001:db8:bad::/48 |admin 100.64.0.0/10 abuse|admin 203.0.113.9/32 scraping"
	if strings.Join(got, "|") != want {
		t.Fatalf("List:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if ok, err := f.list.Remove(f.ctx, "203.0.113.9"); err != nil || !ok {
		t.Fatalf("Remove: %v %v", ok, err)
	}
	if ok, _ := f.list.Remove(f.ctx, "203.0.113.9"); ok {
		t.Fatal("second Remove reported an entry")
	}
	if f.banned("203.0.113.9") {
		t.Fatal("removed address still banned")
	}
	if _, err := f.list.Add(f.ctx, "not-an-ip", "", 0); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("Add of a bad entry: %v", err)
	}
}

// TestAddWithTTLIsLiftedAutomatically checks an expiring admin entry, seen by
// a second process within the cache TTL.
func TestAddWithTTLIsLiftedAutomatically(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	other, err := New(f.rdb, Options{Prefix: f.list.opt.Prefix, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if other.snapshotBanned(f.ctx, "203.0.113.50") {
		t.Fatal("banned before Add")
	}
	e, err := f.list.Add(f.ctx, "203.0.113.50", "test", 700*time.Millisecond)
	if err != nil || e.ExpiresAt.IsZero() {
		t.Fatalf("Add: %+v %v", e, err)
	}
	if !f.banned("203.0.113.50") {
		t.Fatal("not banned right after Add in the same process")
	}
	time.Sleep(time.Second) // past other's cache TTL and the entry's TTL
	if f.banned("203.0.113.50") || other.snapshotBanned(f.ctx, "203.0.113.50") {
		t.Fatal("still banned after the TTL")
	}
	if n, _ := f.rdb.ZCard(f.ctx, f.list.key("entries")).Result(); n != 0 {
		t.Fatalf("%d expired entries left in Redis", n)
	}
}

func (d *Denylist) snapshotBanned(ctx context.Context, addr string) bool {
	_, b := d.Banned(ctx, netip.MustParseAddr(addr))
	return b
}

// TestAutoBanAfterFailedLoginsAndLifting bans an address at the 20th failed
// login within the window and lifts it after BanFor.
func TestAutoBanAfterFailedLoginsAndLifting(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{BanFor: 800 * time.Millisecond})
	ip := netip.MustParseAddr("203.0.113.77")
	for i := 1; i <= 19; i++ {
		if banned, err := f.list.RecordFailedLogin(f.ctx, ip); err != nil || banned {
			t.Fatalf("failure %d: banned=%v err=%v", i, banned, err)
		}
	}
	if f.banned("203.0.113.77") {
		t.Fatal("banned after 19 failures")
	}
	if banned, err := f.list.RecordFailedLogin(f.ctx, ip); err != nil || !banned {
		t.Fatalf("failure 20: banned=%v err=%v", banned, err)
	}
	e, banned := f.list.Banned(f.ctx, ip)
	if !banned || e.Source != SourceAuto || !strings.Contains(e.Reason, "failed logins") {
		t.Fatalf("after 20 failures: %+v %v", e, banned)
	}
	time.Sleep(1100 * time.Millisecond)
	if f.banned("203.0.113.77") {
		t.Fatal("auto-ban not lifted after BanFor")
	}
	// The count started again from zero.
	if banned, _ := f.list.RecordFailedLogin(f.ctx, ip); banned {
		t.Fatal("one failure after the ban banned again")
	}
}

// TestAutoBanAfterRefusalsBansTheIPv6Prefix bans at the 50th refusal, and an
// IPv6 client by its /64.
func TestAutoBanAfterRefusalsBansTheIPv6Prefix(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	ip := netip.MustParseAddr("2001:db8:7:7::1")
	for i := 1; i <= 50; i++ {
		banned, err := f.list.RecordRefusal(f.ctx, ip)
		if err != nil || banned != (i == 50) {
			t.Fatalf("refusal %d: banned=%v err=%v", i, banned, err)
		}
	}
	if !f.banned("2001:db8:7:7:ffff::2") || f.banned("2001:db8:7:8::1") {
		t.Fatal("the ban does not cover exactly the /64")
	}
	ttl, err := f.rdb.ZScore(f.ctx, f.list.key("entries"), "2001:db8:7:7::/64").Result()
	if err != nil || time.Until(time.UnixMilli(int64(ttl))) > time.Hour || time.Until(time.UnixMilli(int64(ttl))) < 59*time.Minute {
		t.Fatalf("ban expiry %v (err %v), want about an hour", time.UnixMilli(int64(ttl)), err)
	}
}

// TestMiddlewareRefusesBannedClientsFirst checks the 403 JSON error.
func TestMiddlewareRefusesBannedClientsFirst(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{Static: []string{"192.0.2.0/24"}})
	resolver, _ := clientip.New(nil)
	reached := 0
	h := f.list.Middleware(resolver.ClientIP)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	for addr, want := range map[string]int{"192.0.2.5:1": http.StatusForbidden, "198.51.100.5:1": http.StatusOK} {
		req := httptest.NewRequest("GET", "/api/v1/devices", nil)
		req.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Fatalf("%s: %d, want %d", addr, w.Code, want)
		}
		if want == http.StatusForbidden {
			var body apierr.Body
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != apierr.Forbidden {
				t.Fatalf("403 body %q", w.Body.String())
			}
		}
	}
	if reached != 1 {
		t.Fatalf("handler reached %d times, want 1", reached)
	}
}

// TestRedisDownKeepsConfiguredListAndServes checks that an unreachable Redis
// fails no request and the configured entries still apply.
func TestRedisDownKeepsConfiguredListAndServes(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 20 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	d, err := New(rdb, Options{Static: []string{"192.0.2.1"}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, b := d.Banned(context.Background(), netip.MustParseAddr("192.0.2.1")); !b {
		t.Fatal("configured entry not applied with Redis down")
	}
	if _, b := d.Banned(context.Background(), netip.MustParseAddr("192.0.2.2")); b {
		t.Fatal("unlisted address banned with Redis down")
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("checks took %s with Redis down", took)
	}
	if _, err := d.RecordFailedLogin(context.Background(), netip.MustParseAddr("192.0.2.2")); err == nil {
		t.Fatal("RecordFailedLogin reported success with Redis down")
	}
}
