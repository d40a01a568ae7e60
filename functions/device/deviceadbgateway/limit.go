package deviceadbgateway

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// sessionLease is how long a session slot counts without renewal: a gateway
// instance that dies gives its users' slots back after at most this long.
const sessionLease = 90 * time.Second

// sessionLimiter counts each user's open sessions across gateway instances:
// one sorted set per user, member the session id, score the end of its
// lease in Unix milliseconds. Safe for concurrent use.
type sessionLimiter struct {
	rdb    *redis.Client
	prefix string
	limit  int
}

// acquireScript drops lapsed leases, then adds the session when the user
// has fewer than the limit. KEYS[1] the set; ARGV now, lease end, limit,
// session id, key TTL (ms). Returns 1 when added.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

func (l *sessionLimiter) acquire(ctx context.Context, user, session string, now time.Time) (bool, error) {
	n, err := acquireScript.Run(ctx, l.rdb, []string{l.prefix + user},
		now.UnixMilli(), now.Add(sessionLease).UnixMilli(), l.limit, session, sessionLease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("acquire ADB session slot of %s: %w", user, err)
	}
	return n == 1, nil
}

func (l *sessionLimiter) renew(ctx context.Context, user string, sessions []string, now time.Time) error {
	key := l.prefix + user
	end := float64(now.Add(sessionLease).UnixMilli())
	pipe := l.rdb.TxPipeline()
	for _, s := range sessions {
		pipe.ZAddXX(ctx, key, redis.Z{Score: end, Member: s})
	}
	pipe.PExpire(ctx, key, sessionLease)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("renew ADB session slots of %s: %w", user, err)
	}
	return nil
}

func (l *sessionLimiter) release(ctx context.Context, user, session string) {
	_ = l.rdb.ZRem(ctx, l.prefix+user, session).Err()
}
