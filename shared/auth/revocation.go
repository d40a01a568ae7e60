package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Revocations records access tokens that must no longer be accepted before
// they expire (logout). Implementations are safe for concurrent use.
type Revocations interface {
	// Revoked reports whether the token with id tokenID was revoked.
	Revoked(ctx context.Context, tokenID string) (bool, error)
	// Revoke refuses the token with id tokenID until until (its expiry); after
	// that the token is refused by its exp anyway and the record may go.
	Revoke(ctx context.Context, tokenID string, until time.Time) error
}

// RevokedKeyPrefix prefixes the Redis key of a revoked access token's jti.
const RevokedKeyPrefix = "revoked:access:"

type redisRevocations struct{ rdb *redis.Client }

// NewRedisRevocations returns Revocations kept in Redis under
// "revoked:access:<jti>", each key expiring when its token would. It panics on
// a nil client.
func NewRedisRevocations(rdb *redis.Client) Revocations {
	if rdb == nil {
		panic("auth: NewRedisRevocations needs a Redis client")
	}
	return redisRevocations{rdb: rdb}
}

func (r redisRevocations) Revoked(ctx context.Context, tokenID string) (bool, error) {
	n, err := r.rdb.Exists(ctx, RevokedKeyPrefix+tokenID).Result()
	if err != nil {
		return false, fmt.Errorf("auth: check revocation of %s: %w", tokenID, err)
	}
	return n > 0, nil
}

func (r redisRevocations) Revoke(ctx context.Context, tokenID string, until time.Time) error {
	// Keep the record a little past exp so that the leeway Verify grants on
	// exp cannot reopen a window.
	ttl := time.Until(until) + Leeway + time.Second
	if ttl <= time.Second {
		return nil
	}
	// Record, then announce to the processes that remember answers (Watched).
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, RevokedKeyPrefix+tokenID, "1", ttl)
		p.Publish(ctx, RevokedChannel, tokenID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: revoke %s: %w", tokenID, err)
	}
	return nil
}
