package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// script decides a request against every rule in KEYS in one call.
// ARGV[1] = slots (buckets + 1); then per key: limit, bucket width in µs.
// Returns per key: allowed (0/1), remaining, retry_after µs, reset_after µs;
// then the server time in µs.
// The Go functions advance and state.decision are the same algorithm.
var script = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slots = tonumber(ARGV[1])
local fmt = '>I6' .. string.rep('I2', slots)
local size = 6 + 2 * slots
local st = {}
local all = true
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local width = tonumber(ARGV[2 * i + 1])
  local k = math.floor(now / width)
  local c = {}
  local raw = redis.call('GET', KEYS[i])
  local newest = nil
  if raw and #raw == size then
    local v = {struct.unpack(fmt, raw)}
    newest = v[1]
    for j = 1, slots do c[j] = v[j + 1] end
  end
  if newest == nil or k - newest >= slots or newest - k > slots then
    for j = 1, slots do c[j] = 0 end
  elseif k < newest then
    k = newest
  else
    for b = newest + 1, k do c[(b % slots) + 1] = 0 end
  end
  local sum = 0
  for j = 1, slots do sum = sum + c[j] end
  st[i] = {k = k, c = c, sum = sum, limit = limit, width = width}
  if sum >= limit then all = false end
end
local out = {}
for i = 1, #KEYS do
  local s = st[i]
  if all then
    local j = (s.k % slots) + 1
    s.c[j] = s.c[j] + 1
    s.sum = s.sum + 1
    redis.call('SET', KEYS[i], struct.pack(fmt, s.k, unpack(s.c)), 'PX', math.ceil(slots * s.width / 1000))
  end
  local retry = 0
  if s.sum >= s.limit then
    local sum = s.sum
    for b = s.k - slots + 1, s.k do
      sum = sum - s.c[(b % slots) + 1]
      if sum < s.limit then
        retry = (b + slots) * s.width - now
        break
      end
    end
  end
  local reset = 0
  for b = s.k, s.k - slots + 1, -1 do
    if s.c[(b % slots) + 1] > 0 then
      reset = (b + slots) * s.width - now
      break
    end
  end
  local ok = 0
  if all then ok = 1 end
  local rem = s.limit - s.sum
  if rem < 0 then rem = 0 end
  out[#out + 1] = ok
  out[#out + 1] = rem
  out[#out + 1] = retry
  out[#out + 1] = reset
end
out[#out + 1] = now
return out
`)

// RedisOptions configures a Redis limiter.
type RedisOptions struct {
	// Prefix is prepended to every key (default "rl:").
	Prefix string
	// Buckets is the number of sub-windows per window (default DefaultBuckets).
	Buckets int
}

// Redis is the shared limiter: every process deciding against the same Redis
// enforces the same counts. Decisions asked for while others are on their way
// to Redis go together in the next pipeline (see batcher), so that many
// concurrent callers cost Redis and this process a round trip per batch, not
// per decision. Safe for concurrent use.
type Redis struct {
	rdb     redis.Scripter
	prefix  string
	buckets int
	batch   *batcher // nil when rdb cannot pipeline
}

// NewRedis returns a limiter on rdb. It loads the script lazily (EVALSHA, EVAL
// on NOSCRIPT).
func NewRedis(rdb redis.Scripter, opt RedisOptions) (*Redis, error) {
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
	l := &Redis{rdb: rdb, prefix: opt.Prefix, buckets: opt.Buckets}
	if p, ok := rdb.(pipeliner); ok {
		l.batch = &batcher{rdb: rdb, pipe: p}
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

// AllowAll decides one request against every rule of reqs in one round trip.
func (l *Redis) AllowAll(ctx context.Context, reqs []Request) ([]Decision, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(reqs))
	args := make([]any, 1, 1+2*len(reqs))
	args[0] = l.buckets + 1
	for i, q := range reqs {
		if err := q.Rule.Validate(); err != nil {
			return nil, err
		}
		g := geometryOf(q.Rule.Window, l.buckets)
		keys[i] = l.Key(q.Rule.Name, q.Key)
		args = append(args, q.Rule.Limit, g.width)
	}
	var vals []int64
	var err error
	if l.batch != nil {
		vals, err = l.batch.run(ctx, keys, args)
	} else {
		vals, err = script.Run(ctx, l.rdb, keys, args...).Int64Slice()
	}
	if err != nil {
		return nil, fmt.Errorf("rate limit %s: %w", keys[0], err)
	}
	if len(vals) != 4*len(reqs)+1 {
		return nil, fmt.Errorf("rate limit %s: script returned %d values for %d rules", keys[0], len(vals), len(reqs))
	}
	at := time.UnixMicro(vals[len(vals)-1])
	out := make([]Decision, len(reqs))
	for i, q := range reqs {
		v := vals[4*i : 4*i+4]
		out[i] = Decision{
			Rule:       q.Rule.Name,
			Allowed:    v[0] == 1,
			Limit:      q.Rule.Limit,
			Remaining:  int(v[1]),
			RetryAfter: time.Duration(v[2]) * time.Microsecond,
			ResetAfter: time.Duration(v[3]) * time.Microsecond,
			At:         at,
		}
	}
	return out, nil
}
