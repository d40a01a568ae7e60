// Package ipban is the IP deny list checked before anything else: exact
// addresses and CIDR ranges from configuration and from Redis (added by
// admins or by the auto-ban), each with an optional expiry.
//
// The Redis part is read with one script call (Redis TIME + ZRANGEBYSCORE) at
// most once per CacheTTL (≤ 1 s) per process and matched in memory, so a
// request costs no round trip: a deny list is read on every request but
// changes rarely, and a ban taking effect within a second is as good as at
// once, while a round trip per request would double the Redis work of every
// public call. When Redis cannot be read the configured list and the last
// entries read from Redis still apply, and no request fails.
//
// Redis layout (Prefix "ipban:" by default): <prefix>entries, a sorted set of
// ranges ("203.0.113.7/32") scored by expiry in Unix ms (+inf: never);
// <prefix>reasons, a hash range → JSON {reason, source, added_at}; and
// <prefix>count:<kind>:<ip>, the sorted-set logs of recent failed logins and
// refusals of one client, kept only while it is below its threshold.
package ipban

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/clientip"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// EnvDenyList names the environment variable holding the configured deny
// list: comma-separated addresses and CIDR ranges.
const EnvDenyList = "CLOUDPHONE_IP_DENYLIST"

// Sources of an entry.
const (
	SourceConfig = "config"
	SourceAdmin  = "admin"
	SourceAuto   = "auto"
)

// Entry is one denied range.
type Entry struct {
	Range     netip.Prefix `json:"range"`
	Reason    string       `json:"reason,omitempty"`
	Source    string       `json:"source"`
	AddedAt   time.Time    `json:"added_at,omitzero"`
	ExpiresAt time.Time    `json:"expires_at,omitzero"` // zero: never
}

// Options configures a Denylist. Zero fields take the defaults written beside them.
type Options struct {
	Static       []string      // configured entries (CLOUDPHONE_IP_DENYLIST)
	Prefix       string        // Redis key prefix (default "ipban:")
	CacheTTL     time.Duration // how long the Redis list is reused (default and maximum 1s)
	Timeout      time.Duration // bound on each Redis call (default 50ms)
	FailedLogins int           // failed logins that trigger a ban (default 20)
	Refusals     int           // rate-limit refusals that trigger a ban (default 50)
	CountWindow  time.Duration // window both are counted in (default 10m)
	BanFor       time.Duration // length of an automatic ban (default 1h)
	Log          *slog.Logger  // required
	Metrics      *metrics.Metrics
}

// StaticFromConfig returns the entries of CLOUDPHONE_IP_DENYLIST in src.
func StaticFromConfig(src config.Source) []string {
	raw, _ := src.Lookup(EnvDenyList)
	var out []string
	for p := range strings.SplitSeq(raw, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Denylist answers whether a client is banned and keeps the Redis list. Safe
// for concurrent use.
type Denylist struct {
	rdb        *redis.Client
	opt        Options
	static     []Entry
	gauge      interface{ Set(float64) }
	snap       atomic.Pointer[snapshot]
	refreshing atomic.Bool
	degraded   atomic.Bool
}

// New returns a deny list over rdb with the configured entries of opt.Static.
// A malformed configured entry is an error.
func New(rdb *redis.Client, opt Options) (*Denylist, error) {
	if rdb == nil {
		return nil, errors.New("ipban: New needs a Redis client")
	}
	if opt.Log == nil {
		return nil, errors.New("ipban: New needs a logger")
	}
	if opt.Prefix == "" {
		opt.Prefix = "ipban:"
	}
	if opt.CacheTTL <= 0 || opt.CacheTTL > time.Second {
		opt.CacheTTL = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 50 * time.Millisecond
	}
	if opt.FailedLogins <= 0 {
		opt.FailedLogins = 20
	}
	if opt.Refusals <= 0 {
		opt.Refusals = 50
	}
	if opt.CountWindow <= 0 {
		opt.CountWindow = 10 * time.Minute
	}
	if opt.BanFor <= 0 {
		opt.BanFor = time.Hour
	}
	ps, err := clientip.ParsePrefixes(opt.Static)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvDenyList, err)
	}
	d := &Denylist{rdb: rdb, opt: opt}
	for _, p := range ps {
		d.static = append(d.static, Entry{Range: p, Source: SourceConfig})
	}
	if opt.Metrics != nil {
		g := opt.Metrics.Degraded.WithLabelValues("ipban")
		g.Set(0)
		d.gauge = g
	}
	d.snap.Store(newSnapshot(d.static, nil, time.Time{}))
	return d, nil
}

// Banned reports whether a is denied and by which entry. It never fails: when
// Redis cannot be read the configured entries and the last Redis entries read
// are used.
func (d *Denylist) Banned(ctx context.Context, a netip.Addr) (Entry, bool) {
	now := time.Now()
	s := d.snap.Load()
	if now.Sub(s.at) >= d.opt.CacheTTL && d.refreshing.CompareAndSwap(false, true) {
		d.refresh(ctx)
		d.refreshing.Store(false)
		s = d.snap.Load()
	}
	return s.match(a.Unmap().WithZone(""), now)
}

// Invalidate makes the next Banned read Redis again.
func (d *Denylist) Invalidate() {
	s := *d.snap.Load()
	s.at = time.Time{}
	d.snap.Store(&s)
}

// readScript returns Redis time in ms and the unexpired entries with their
// expiry, and prunes the expired ones.
var readScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local reasons = {}
for i = 1, #live, 2 do
  reasons[#reasons + 1] = redis.call('HGET', KEYS[2], live[i]) or ''
end
return {tostring(now), live, reasons}
`)

type storedReason struct {
	Reason  string    `json:"reason"`
	Source  string    `json:"source"`
	AddedAt time.Time `json:"added_at"`
}

// read returns the Redis entries with expiries converted to the local clock.
func (d *Denylist) read(ctx context.Context) ([]Entry, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opt.Timeout)
	defer cancel()
	res, err := readScript.Run(ctx, d.rdb, []string{d.key("entries"), d.key("reasons")}).Slice()
	if err != nil {
		return nil, fmt.Errorf("read ip deny list: %w", err)
	}
	local := time.Now()
	if len(res) != 3 {
		return nil, fmt.Errorf("read ip deny list: %d values", len(res))
	}
	redisNow, _ := strconv.ParseInt(fmt.Sprint(res[0]), 10, 64)
	live, _ := res[1].([]any)
	reasons, _ := res[2].([]any)
	var out []Entry
	for i := 0; i+1 < len(live); i += 2 {
		member := fmt.Sprint(live[i])
		p, err := netip.ParsePrefix(member)
		if err != nil {
			continue
		}
		e := Entry{Range: p}
		if score := fmt.Sprint(live[i+1]); score != "inf" {
			ms, err := strconv.ParseFloat(score, 64)
			if err != nil {
				continue
			}
			e.ExpiresAt = local.Add(time.Duration(int64(ms)-redisNow) * time.Millisecond)
		}
		if i/2 < len(reasons) {
			var sr storedReason
			if json.Unmarshal([]byte(fmt.Sprint(reasons[i/2])), &sr) == nil {
				e.Reason, e.Source, e.AddedAt = sr.Reason, sr.Source, sr.AddedAt
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func (d *Denylist) refresh(ctx context.Context) {
	entries, err := d.read(ctx)
	now := time.Now()
	if err != nil {
		old := d.snap.Load()
		d.snap.Store(newSnapshot(d.static, old.dynamic, now))
		if d.degraded.CompareAndSwap(false, true) {
			d.opt.Log.Warn("ip deny list degraded: redis unreachable", "component", "ipban", "err", err)
			d.setGauge(1)
		}
		return
	}
	d.snap.Store(newSnapshot(d.static, entries, now))
	if d.degraded.CompareAndSwap(true, false) {
		d.opt.Log.Info("ip deny list restored", "component", "ipban")
		d.setGauge(0)
	}
}

func (d *Denylist) setGauge(v float64) {
	if d.gauge != nil {
		d.gauge.Set(v)
	}
}

func (d *Denylist) key(parts ...string) string { return d.opt.Prefix + strings.Join(parts, ":") }

// List returns every entry in force: the configured ones, then those in
// Redis. It fails when Redis cannot be read.
func (d *Denylist) List(ctx context.Context) ([]Entry, error) {
	entries, err := d.read(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Range.String(), b.Range.String()) })
	return append(slices.Clone(d.static), entries...), nil
}

// Add denies entry (an address or CIDR range) for ttl (0: until removed),
// replacing an entry for the same range. It takes effect in this process at
// once and in others within CacheTTL.
func (d *Denylist) Add(ctx context.Context, entry, reason string, ttl time.Duration) (Entry, error) {
	p, err := clientip.ParsePrefix(entry)
	if err != nil {
		return Entry{}, apierr.Wrap(apierr.Invalid, err, "not an IP address or CIDR range")
	}
	if ttl < 0 {
		return Entry{}, apierr.New(apierr.Invalid, "ttl must not be negative")
	}
	if p.Bits() < MinBits(p.Addr()) {
		return Entry{}, apierr.New(apierr.Invalid, "%s is wider than a /%d: a ban may cover at most a /8 of IPv4 or a /32 of IPv6",
			p, MinBits(p.Addr()))
	}
	return d.add(ctx, p, reason, SourceAdmin, ttl)
}

// MinBits is the shortest prefix an admin may ban in a's family: /8 for IPv4,
// /32 for IPv6. Wider bans lock out whole continents (0.0.0.0/0: everyone,
// with no way back through the API).
func MinBits(a netip.Addr) int {
	if a.Is4() {
		return 8
	}
	return 32
}

// Clear removes every Redis entry (admin and auto bans; the configured ones
// stay) and reports how many there were.
func (d *Denylist) Clear(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	var n *redis.IntCmd
	_, err := d.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		n = pipe.ZCard(ctx, d.key("entries"))
		pipe.Del(ctx, d.key("entries"), d.key("reasons"))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("clear the deny list: %w", err)
	}
	d.Invalidate()
	return n.Val(), nil
}

func (d *Denylist) add(ctx context.Context, p netip.Prefix, reason, source string, ttl time.Duration) (Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Millisecond)
	e := Entry{Range: p, Reason: reason, Source: source, AddedAt: now}
	score := math.Inf(1)
	if ttl > 0 {
		e.ExpiresAt = now.Add(ttl)
		score = float64(e.ExpiresAt.UnixMilli())
	}
	sr, _ := json.Marshal(storedReason{Reason: reason, Source: source, AddedAt: now})
	member := p.String()
	_, err := d.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.ZAdd(ctx, d.key("entries"), redis.Z{Score: score, Member: member})
		pipe.HSet(ctx, d.key("reasons"), member, sr)
		return nil
	})
	if err != nil {
		return Entry{}, fmt.Errorf("ban %s: %w", member, err)
	}
	d.Invalidate()
	return e, nil
}

// Remove lifts the Redis entry for entry's range; it reports whether there
// was one. Configured entries cannot be removed at run time.
func (d *Denylist) Remove(ctx context.Context, entry string) (bool, error) {
	p, err := clientip.ParsePrefix(entry)
	if err != nil {
		return false, apierr.Wrap(apierr.Invalid, err, "not an IP address or CIDR range")
	}
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	member := p.String()
	var n *redis.IntCmd
	_, err = d.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		n = pipe.ZRem(ctx, d.key("entries"), member)
		pipe.HDel(ctx, d.key("reasons"), member)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("unban %s: %w", member, err)
	}
	d.Invalidate()
	return n.Val() > 0, nil
}

// countScript logs one event for a client and bans it when the log reaches
// the threshold within the window. KEYS: log, entries, reasons. ARGV: unique
// member, window ms, threshold, ban ms, range, reason JSON. Returns the count
// and the ban's expiry in Unix ms (0 when not banned). A longer ban in force
// is kept.
var countScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  local untilms = now + tonumber(ARGV[4])
  local cur = redis.call('ZSCORE', KEYS[2], ARGV[5])
  if not cur or (cur ~= 'inf' and tonumber(cur) < untilms) then
    redis.call('ZADD', KEYS[2], untilms, ARGV[5])
    redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
  end
  return {n, untilms}
end
redis.call('PEXPIRE', KEYS[1], window)
return {n, 0}
`)

// RecordFailedLogin counts a failed login from ip; the FailedLogins-th within
// CountWindow bans ip (its /64 for IPv6) for BanFor. It reports whether this
// call banned; it fails when Redis cannot be reached (the caller logs and
// carries on).
func (d *Denylist) RecordFailedLogin(ctx context.Context, ip netip.Addr) (bool, error) {
	return d.record(ctx, ip, "login", d.opt.FailedLogins, "failed logins")
}

// RecordRefusal counts a rate-limit refusal of ip; the Refusals-th within
// CountWindow bans it, like RecordFailedLogin.
func (d *Denylist) RecordRefusal(ctx context.Context, ip netip.Addr) (bool, error) {
	return d.record(ctx, ip, "refusal", d.opt.Refusals, "rate-limit refusals")
}

func (d *Denylist) record(ctx context.Context, ip netip.Addr, kind string, threshold int, what string) (bool, error) {
	if !ip.IsValid() {
		return false, nil
	}
	p := clientip.KeyPrefix(ip)
	var id [8]byte
	_, _ = rand.Read(id[:])
	reason := fmt.Sprintf("%d %s within %s", threshold, what, d.opt.CountWindow)
	now := time.Now().UTC().Truncate(time.Millisecond)
	sr, _ := json.Marshal(storedReason{Reason: reason, Source: SourceAuto, AddedAt: now})
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	res, err := countScript.Run(ctx, d.rdb,
		[]string{d.key("count", kind, p.String()), d.key("entries"), d.key("reasons")},
		hex.EncodeToString(id[:]), d.opt.CountWindow.Milliseconds(), threshold, d.opt.BanFor.Milliseconds(), p.String(), string(sr),
	).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("record %s of %s: %w", kind, p, err)
	}
	if len(res) == 2 && res[1] > 0 {
		d.opt.Log.WarnContext(ctx, "ip auto-banned", "ip", p.String(), "reason", reason, "ban_for", d.opt.BanFor.String())
		d.Invalidate()
		return true, nil
	}
	return false, nil
}

// Middleware refuses a banned client with 403 forbidden before the next
// handler runs. clientIP is normally clientip.Resolver.ClientIP.
func (d *Denylist) Middleware(clientIP func(*http.Request) netip.Addr) func(http.Handler) http.Handler {
	if clientIP == nil {
		panic("ipban: Middleware needs a ClientIP function")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, banned := d.Banned(r.Context(), clientIP(r)); banned {
				apierr.Write(w, r, d.opt.Log, apierr.New(apierr.Forbidden, "access denied"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// snapshot is the deny list as matched in memory.
type snapshot struct {
	at      time.Time // when Redis was last read (zero: never)
	dynamic []Entry   // from Redis
	byRange map[netip.Prefix]Entry
	bits4   []int // distinct prefix lengths of IPv4 ranges, longest first
	bits6   []int
}

func newSnapshot(static, dynamic []Entry, at time.Time) *snapshot {
	s := &snapshot{at: at, dynamic: dynamic, byRange: map[netip.Prefix]Entry{}}
	for _, e := range slices.Concat(static, dynamic) {
		if old, ok := s.byRange[e.Range]; ok && old.ExpiresAt.IsZero() {
			continue // a permanent entry wins
		}
		s.byRange[e.Range] = e
		if e.Range.Addr().Is4() {
			s.bits4 = append(s.bits4, e.Range.Bits())
		} else {
			s.bits6 = append(s.bits6, e.Range.Bits())
		}
	}
	for _, b := range []*[]int{&s.bits4, &s.bits6} {
		slices.Sort(*b)
		*b = slices.Compact(*b)
		slices.Reverse(*b)
	}
	return s
}

func (s *snapshot) match(a netip.Addr, now time.Time) (Entry, bool) {
	if !a.IsValid() {
		return Entry{}, false
	}
	bits := s.bits6
	if a.Is4() {
		bits = s.bits4
	}
	for _, b := range bits {
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if e, ok := s.byRange[p]; ok && (e.ExpiresAt.IsZero() || now.Before(e.ExpiresAt)) {
			return e, true
		}
	}
	return Entry{}, false
}
