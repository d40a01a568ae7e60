package auth

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Revocations records access tokens that must no longer be accepted before
// they expire: one token (logout), every token of a session (a refresh family
// revoked), or every token of a user (disabled, roles changed, password
// changed, logged out everywhere). Implementations are safe for concurrent use.
type Revocations interface {
	// Refused reports whether p's token was revoked, alone or by a cutoff of
	// its user or session that is later than the token's issue time.
	Refused(ctx context.Context, p Principal) (bool, error)
	// Revoke refuses the token with id tokenID until until (its expiry); after
	// that the token is refused by its exp anyway and the record may go.
	Revoke(ctx context.Context, tokenID string, until time.Time) error
	// EndUser refuses every access token of userID issued up to now. The
	// record is kept for keep (the longest access-token lifetime), after which
	// every such token has expired anyway.
	EndUser(ctx context.Context, userID string, keep time.Duration) error
	// EndSession is EndUser for the tokens of one session (refresh family).
	EndSession(ctx context.Context, sessionID string, keep time.Duration) error
}

// Redis keys of revocations: a revoked access token's jti, and the cutoffs
// (Unix milliseconds) of users and sessions.
const (
	RevokedKeyPrefix        = "revoked:access:"
	RevokedUserKeyPrefix    = "revoked:user:"
	RevokedSessionKeyPrefix = "revoked:session:"
)

type redisRevocations struct{ rdb *redis.Client }

// NewRedisRevocations returns Revocations kept in Redis: "revoked:access:<jti>"
// expiring when its token would, and "revoked:user:<id>" and
// "revoked:session:<id>" holding a cutoff in Unix milliseconds. It panics on
// a nil client.
func NewRedisRevocations(rdb *redis.Client) Revocations {
	if rdb == nil {
		panic("auth: NewRedisRevocations needs a Redis client")
	}
	return redisRevocations{rdb: rdb}
}

// Revoked reports whether the token with id tokenID was revoked by itself.
func (r redisRevocations) Revoked(ctx context.Context, tokenID string) (bool, error) {
	n, err := r.rdb.Exists(ctx, RevokedKeyPrefix+tokenID).Result()
	if err != nil {
		return false, fmt.Errorf("auth: check revocation of %s: %w", tokenID, err)
	}
	return n > 0, nil
}

// Refused checks the token, its user and its session in one round trip.
func (r redisRevocations) Refused(ctx context.Context, p Principal) (bool, error) {
	st, err := r.lookup(ctx, p)
	if err != nil {
		return false, err
	}
	return st.refuses(p), nil
}

// revocationState is what Redis holds about one token: whether it was revoked
// and the cutoffs (Unix ms, 0 for none) of its user and session.
type revocationState struct {
	token         bool
	user, session int64
}

// refuses reports whether the state refuses p. A cutoff refuses the tokens
// issued in its own millisecond too: a token issued just after it may be
// refused once (its client refreshes), one issued just before never passes.
func (s revocationState) refuses(p Principal) bool {
	issued := p.IssuedAt.UnixMilli()
	return s.token || issued <= s.user || issued <= s.session
}

func (r redisRevocations) lookup(ctx context.Context, p Principal) (revocationState, error) {
	keys := []string{RevokedKeyPrefix + p.TokenID, RevokedUserKeyPrefix + p.UserID}
	if p.SessionID != "" {
		keys = append(keys, RevokedSessionKeyPrefix+p.SessionID)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return revocationState{}, fmt.Errorf("auth: check revocation of %s: %w", p.TokenID, err)
	}
	st := revocationState{token: vals[0] != nil, user: millis(vals[1])}
	if len(vals) > 2 {
		st.session = millis(vals[2])
	}
	return st, nil
}

func millis(v any) int64 {
	s, ok := v.(string)
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
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

func (r redisRevocations) EndUser(ctx context.Context, userID string, keep time.Duration) error {
	_, err := r.cut(ctx, RevokedUserKeyPrefix, cutoffUser, userID, keep)
	return err
}

func (r redisRevocations) EndSession(ctx context.Context, sessionID string, keep time.Duration) error {
	_, err := r.cut(ctx, RevokedSessionKeyPrefix, cutoffSession, sessionID, keep)
	return err
}

// Kinds of cutoff in announcements ("u:<id>:<ms>", "s:<id>:<ms>"); a token
// revocation is announced as the bare jti.
const (
	cutoffUser    = "u"
	cutoffSession = "s"
)

// cutRaise sets a cutoff unless a later one is already there, keeps it for
// the given milliseconds, and announces the cutoff in force.
var cutRaise = redis.NewScript(`
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local at = tonumber(ARGV[1])
if old > at then at = old end
redis.call('SET', KEYS[1], at, 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ':' .. at)
return at`)

func (r redisRevocations) cut(ctx context.Context, prefix, kind, id string, keep time.Duration) (int64, error) {
	if id == "" {
		return 0, fmt.Errorf("auth: end the tokens of an empty %s id", kind)
	}
	keep += Leeway + time.Second
	at, err := cutRaise.Run(ctx, r.rdb, []string{prefix + id},
		time.Now().UnixMilli(), keep.Milliseconds(), RevokedChannel, kind+":"+id).Int64()
	if err != nil {
		return 0, fmt.Errorf("auth: end the tokens of %s %s: %w", kind, id, err)
	}
	return at, nil
}
