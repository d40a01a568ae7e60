package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// script decides a batch of requests, one after another, each against every
// rule of its own: the calls that concurrent callers made meanwhile (see
// batcher), so that they cost Redis one script run and this process one
// round trip. KEYS are the keys of every rule of every request, in order.
// ARGV[1] = slots (buckets + 1), ARGV[2] = leaseShare; then per request: its
// number of rules n, and per rule: limit, bucket width in µs, the caller's
// demand in admissions per bucket (1: this request alone; see leases), and
// the bucket and count of the unused admissions of an ended lease it gives
// back (count 0: none).
// Returns per rule: allowed (0/1), remaining, retry_after µs, reset_after µs,
// granted (admissions counted for the caller: this request and its lease),
// the bucket they were counted in; then the server time in µs.
// Every key is read by one MGET at the start and, when a request was
// admitted, written once at the end (a key that several requests of the
// batch share, such as one client's address, is carried in the script's
// memory between them).
// Without leases and give-backs, the Go functions advance and state.decision
// (Local's) are the same algorithm.
var script = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slots = tonumber(ARGV[1])
local share = tonumber(ARGV[2])
local fmt = '>I6' .. string.rep('I2', slots)
local size = 6 + 2 * slots
local raws = redis.call('MGET', unpack(KEYS))
local seen = {}
local dirty = {}
local out = {}
local o = 0
local a = 3
local key = 0
local ks, cs, sums, limits, widths, wants = {}, {}, {}, {}, {}, {}
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  a = a + 1
  local all = true
  for i = 1, n do
    local limit = tonumber(ARGV[a])
    local width = tonumber(ARGV[a + 1])
    wants[i] = tonumber(ARGV[a + 2])
    local back, unused = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    a = a + 5
    local name = KEYS[key + i]
    local k = math.floor(now / width)
    local s = seen[name]
    local c = nil
    if s then
      c = s.c
    else
      local raw = raws[key + i]
      if raw and #raw == size then
        c = {struct.unpack(fmt, raw)}
      end
      s = {c = c, width = width}
      seen[name] = s
    end
    if c ~= nil then
      local newest = c[1]
      if k - newest >= slots or newest - k > slots then
        c = nil
      elseif k < newest then
        k = newest
      else
        for b = newest + 1, k do c[(b % slots) + 2] = 0 end
        c[1] = k
      end
    end
    if c == nil then
      c = {k}
      for j = 2, slots + 1 do c[j] = 0 end
    end
    if unused > 0 and back <= k and back > k - slots then
      local j = (back % slots) + 2
      c[j] = math.max(0, c[j] - unused)
      dirty[name] = true
    end
    s.c = c
    s.width = width
    local sum = 0
    for j = 2, slots + 1 do sum = sum + c[j] end
    ks[i], cs[i], sums[i], limits[i], widths[i] = k, c, sum, limit, width
    if sum >= limit then all = false end
  end
  for i = 1, n do
    local k, c, sum, limit, width = ks[i], cs[i], sums[i], limits[i], widths[i]
    local granted = 0
    if all then
      local want = math.ceil(wants[i] * (width - now % width) / width)
      granted = math.max(1, math.min(want, math.floor((limit - sum) / share)))
      local j = (k % slots) + 2
      c[j] = c[j] + granted
      sum = sum + granted
      dirty[KEYS[key + i]] = true
    end
    local retry = 0
    if sum >= limit then
      local r = sum
      for b = k - slots + 1, k do
        r = r - c[(b % slots) + 2]
        if r < limit then
          retry = (b + slots) * width - now
          break
        end
      end
    end
    local reset = 0
    for b = k, k - slots + 1, -1 do
      if c[(b % slots) + 2] > 0 then
        reset = (b + slots) * width - now
        break
      end
    end
    local rem = limit - sum
    if rem < 0 then rem = 0 end
    out[o + 1] = all and 1 or 0
    out[o + 2] = rem
    out[o + 3] = retry
    out[o + 4] = reset
    out[o + 5] = granted
    out[o + 6] = k
    o = o + 6
  end
  key = key + n
end
for name in pairs(dirty) do
  local s = seen[name]
  redis.call('SET', name, struct.pack(fmt, s.c[1], unpack(s.c, 2, slots + 1)), 'PX', math.ceil(slots * s.width / 1000))
end
out[o + 1] = now
return out
`)

// RedisOptions configures a Redis limiter.
type RedisOptions struct {
	// Prefix is prepended to every key (default "rl:").
	Prefix string
	// Buckets is the number of sub-windows per window (default DefaultBuckets).
	Buckets int
	// NoLeases decides every request in Redis: no admission is counted
	// before it is made, so a key is never refused while it has room, at
	// the price of a round trip per request (or per batch of them).
	NoLeases bool
}

// Redis is the shared limiter: every process deciding against the same Redis
// enforces the same counts. A busy key is decided in this process from a
// lease (see leases) and goes to Redis about once per lease. Decisions asked
// for while others are on their way to Redis are decided together by the
// next script call (see batcher), so that many concurrent callers cost Redis
// and this process one script run and one round trip per batch, not per
// decision. Every key must live on one Redis (a cluster is not supported).
// Safe for concurrent use.
type Redis struct {
	prefix  string
	buckets int
	batch   *batcher
	leases  *leases // nil: NoLeases
}

// NewRedis returns a limiter on rdb. It loads the script lazily (EVALSHA,
// SCRIPT LOAD on NOSCRIPT).
func NewRedis(rdb *redis.Client, opt RedisOptions) (*Redis, error) {
	if rdb == nil {
		return nil, errors.New("ratelimit: NewRedis needs a Redis client")
	}
	if opt.Prefix == "" {
		opt.Prefix = "rl:"
	}
	if opt.Buckets == 0 {
		opt.Buckets = DefaultBuckets
	}
	if opt.Buckets < 1 || opt.Buckets > 1000 {
		return nil, fmt.Errorf("ratelimit: %d buckets out of range 1..1000", opt.Buckets)
	}
	l := &Redis{prefix: opt.Prefix, buckets: opt.Buckets, batch: &batcher{rdb: rdb, slots: opt.Buckets + 1}}
	if !opt.NoLeases {
		l.leases = &leases{m: map[string]*lease{}}
	}
	return l, nil
}

// Key returns the Redis key that holds rule's state for key.
func (l *Redis) Key(rule, key string) string { return l.prefix + rule + ":" + key }

// Allow decides one request against one rule.
func (l *Redis) Allow(ctx context.Context, rule Rule, key string) (Decision, error) {
	ds, err := l.AllowAll(ctx, []Request{{Rule: rule, Key: key}})
	if err != nil {
		return Decision{}, err
	}
	return ds[0], nil
}

// AllowAll decides one request against every rule of reqs: from the leases
// this process holds when every rule has one, otherwise in one script call
// for the rules without (the others hold a lease's admission meanwhile).
func (l *Redis) AllowAll(ctx context.Context, reqs []Request) ([]Decision, error) {
	ds, _, err := l.allowAllBy(ctx, reqs, time.Time{})
	return ds, err
}

// allowAllBy is AllowAll that gives up at deadline (zero: ctx's only); asked
// reports whether Redis was asked (not when leases decided every rule).
func (l *Redis) allowAllBy(ctx context.Context, reqs []Request, deadline time.Time) (ds []Decision, asked bool, err error) {
	if len(reqs) == 0 {
		return nil, false, nil
	}
	keys := make([]string, len(reqs))
	widths := make([]int64, len(reqs))
	for i, q := range reqs {
		if err := q.Rule.Validate(); err != nil {
			return nil, false, err
		}
		keys[i] = l.Key(q.Rule.Name, q.Key)
		widths[i] = geometryOf(q.Rule.Window, l.buckets).width
	}
	// sent is taken before Redis is asked: a lease measured from it ends no
	// later than the bucket it is counted in (see leases).
	sent := time.Now()
	out := make([]Decision, len(reqs))
	held, asks, remote := l.leases.take(keys, reqs, widths, sent, out)
	if remote == 0 {
		return out, false, nil
	}
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	c := &call{deadline: deadline, keys: make([]string, 0, remote), args: make([]any, 1, 1+5*remote)}
	c.args[0] = remote
	for i, q := range reqs {
		if held[i] == nil {
			a := asks[i]
			c.keys = append(c.keys, keys[i])
			c.args = append(c.args, q.Rule.Limit, widths[i], a.demand, a.back, a.unused)
		}
	}
	err = l.batch.run(ctx, c)
	admitted := err == nil && c.vals[0] == 1
	granted := make([]int, len(reqs))
	buckets := make([]int64, len(reqs))
	if err == nil {
		at := time.UnixMicro(c.now)
		v := c.vals
		for i, q := range reqs {
			if held[i] != nil {
				out[i].Allowed = admitted
				continue
			}
			granted[i], buckets[i] = int(v[4]), v[5]
			out[i] = Decision{
				Rule:       q.Rule.Name,
				Allowed:    admitted,
				Limit:      q.Rule.Limit,
				Remaining:  int(v[1]) + max(granted[i]-1, 0),
				RetryAfter: time.Duration(v[2]) * time.Microsecond,
				ResetAfter: time.Duration(v[3]) * time.Microsecond,
				At:         at,
			}
			v = v[ruleVals:]
		}
	}
	if l.leases != nil {
		l.leases.settle(keys, reqs, widths, held, asks, granted, buckets, admitted, sent, c.now, out)
	}
	if err != nil {
		return nil, true, fmt.Errorf("rate limit %s: %w", c.keys[0], err)
	}
	return out, true, nil
}
