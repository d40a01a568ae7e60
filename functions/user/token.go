package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// RefreshRequest is the body of POST /api/v1/auth/refresh.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// LogoutRequest is the body of POST /api/v1/auth/logout; without a refresh
// token every refresh family of the user is revoked.
type LogoutRequest struct {
	RefreshToken string `json:"refresh_token,omitempty"`
	// Everywhere ends every session of the user, on every device.
	Everywhere bool `json:"everywhere,omitempty"`
}

// refreshTokenBytes is the entropy of a refresh token; the token is its
// unpadded base64url (43 characters).
const refreshTokenBytes = 32

func newRefreshToken() (token string, hash []byte, err error) {
	b := make([]byte, refreshTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("refresh token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashRefreshToken(token), nil
}

func hashRefreshToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// wellFormedRefreshToken reports whether token could be one of ours, so that
// junk is refused before it reaches the database.
func wellFormedRefreshToken(token string) bool {
	if len(token) != base64.RawURLEncoding.EncodedLen(refreshTokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(token)
	return err == nil
}

const insertRefreshToken = `
INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at)
VALUES (coalesce(nullif($1, '')::uuid, gen_random_uuid()), $2, $3, now() + make_interval(secs => $4))
RETURNING id::text, family_id::text`

// issueTokens stores a new refresh token for userID within tx, in family (a
// new family when empty), and signs an access token carrying roles and the
// permissions they grant. It returns the tokens and the refresh token's row id.
func (s *Service) issueTokens(ctx context.Context, tx pgx.Tx, userID, username string, roles []string, family string) (Tokens, string, error) {
	if s.issuer == nil {
		return Tokens{}, "", errors.New("this function has no signing key (CLOUDPHONE_USER_TOKEN_KEY)")
	}
	refresh, hash, err := newRefreshToken()
	if err != nil {
		return Tokens{}, "", err
	}
	var rowID string
	if err := tx.QueryRow(ctx, insertRefreshToken, family, userID, hash, s.cfg.RefreshTokenTTL.Seconds()).Scan(&rowID, &family); err != nil {
		return Tokens{}, "", fmt.Errorf("store refresh token of %s: %w", userID, err)
	}
	access, _, err := s.issuer.Issue(auth.Principal{UserID: userID, Username: username, Roles: roles,
		Permissions: Permissions(roles), SessionID: family})
	if err != nil {
		return Tokens{}, "", err
	}
	return Tokens{
		AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(s.issuer.TTL().Seconds()),
	}, rowID, nil
}

func errBadRefreshToken(cause string) error {
	return apierr.Wrap(apierr.Unauthorized, errors.New(cause), "invalid or expired refresh token")
}

// lockRefreshToken locks the token's row and tells whether it was used
// within the last $2 seconds, and by which successor.
const lockRefreshToken = `
SELECT rt.id::text, rt.family_id::text, rt.user_id::text,
       rt.expires_at <= now(), rt.used_at IS NOT NULL, rt.revoked_at IS NOT NULL,
       coalesce(rt.used_at > now() - make_interval(secs => $2), false), coalesce(rt.replaced_by::text, ''),
       u.username, u.roles, u.status
FROM refresh_tokens rt JOIN users u ON u.id = rt.user_id
WHERE rt.token_hash = $1
FOR UPDATE OF rt`

// retireSuccessor marks the successor $1 of a token presented again within
// the grace used, replaced by $2, if nobody has used it yet.
const retireSuccessor = `
UPDATE refresh_tokens SET used_at = now(), replaced_by = $2
WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL`

const markRefreshTokenUsed = `
UPDATE refresh_tokens SET used_at = now(), replaced_by = $2 WHERE id = $1`

const revokeFamily = `
UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL`

// Refresh rotates refreshToken: in one transaction with the token's row
// locked, a valid unused token is marked used and a successor in the same
// family is issued with a new access token (roles read afresh). A token that
// was already used or revoked is a sign of theft: its whole family is revoked
// and so are the access tokens issued in it (so the thief's and the owner's
// newer tokens die at once). Every refusal is apierr Unauthorized.
//
// One second use is a retry, not theft: within RefreshReuseGrace of the
// token's use, while the successor it was exchanged for is still unused (the
// client never got it or never kept it: a browser that leaves a page while
// the refresh's answer is on its way keeps the old cookie). Then that
// successor is retired and a new one issued in its place, so the family still
// has one live token. Once the successor has been used, or after the grace,
// the old token's second use revokes the family as above.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	if refreshToken == "" {
		return Tokens{}, apierr.New(apierr.Invalid, "refresh_token: is required")
	}
	if !wellFormedRefreshToken(refreshToken) {
		return Tokens{}, errBadRefreshToken("malformed")
	}
	var (
		tokens  Tokens
		refusal error
		ended   string // the family whose access tokens must end
	)
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			id, family, userID, username, status, successor string
			expired, used, revoked, recent                  bool
			roles                                           []string
		)
		err := tx.QueryRow(ctx, lockRefreshToken, hashRefreshToken(refreshToken), s.cfg.RefreshReuseGrace.Seconds()).
			Scan(&id, &family, &userID, &expired, &used, &revoked, &recent, &successor, &username, &roles, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			refusal = errBadRefreshToken("unknown")
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock refresh token: %w", err)
		}
		reused := func() error {
			if _, err := tx.Exec(ctx, revokeFamily, family); err != nil {
				return fmt.Errorf("revoke refresh family %s: %w", family, err)
			}
			s.log.WarnContext(ctx, "refresh token reused: family revoked", "user_id", userID, "family_id", family)
			tokens, refusal, ended = Tokens{}, errBadRefreshToken("reused"), family
			return nil
		}
		retry := used && recent && successor != ""
		switch {
		case revoked || (used && !retry):
			return reused()
		case expired:
			refusal = errBadRefreshToken("expired")
			return nil
		case status != StatusActive:
			if _, err := tx.Exec(ctx, revokeFamily, family); err != nil {
				return fmt.Errorf("revoke refresh family %s: %w", family, err)
			}
			refusal, ended = errBadRefreshToken("account disabled"), family
			return nil
		}
		var next string
		tokens, next, err = s.issueTokens(ctx, tx, userID, username, roles, family)
		if err != nil {
			return err
		}
		if retry {
			tag, err := tx.Exec(ctx, retireSuccessor, successor, next)
			if err != nil {
				return fmt.Errorf("retire refresh token %s: %w", successor, err)
			}
			if tag.RowsAffected() == 0 { // the successor was used: this is a second use after all
				return reused() // the family's revocation takes the token just issued too
			}
			s.log.InfoContext(ctx, "refresh token presented again within the grace: its unused successor replaced",
				"user_id", userID, "family_id", family)
			return nil
		}
		if _, err := tx.Exec(ctx, markRefreshTokenUsed, id, next); err != nil {
			return fmt.Errorf("mark refresh token %s used: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return Tokens{}, err
	}
	if ended != "" {
		if err := s.revoked.EndSession(ctx, ended, s.cfg.AccessTokenTTL); err != nil {
			return Tokens{}, err
		}
	}
	if refusal != nil {
		return Tokens{}, refusal
	}
	return tokens, nil
}

// revokeFamilyOfToken revokes the refresh family of a user's token and
// returns the family (no row for a token that is not theirs).
const revokeFamilyOfToken = `
WITH f AS (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2),
     revoked AS (UPDATE refresh_tokens SET revoked_at = now()
                 WHERE family_id = (SELECT family_id FROM f) AND revoked_at IS NULL)
SELECT family_id::text FROM f`

const revokeAllFamilies = `
UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`

// Logout ends p's session: the refresh family of refreshToken (only if it
// belongs to p; an unknown token is ignored) and every access token issued in
// it, every access token of p's own session, and p's access token. With
// everywhere, or when refreshToken is empty, it ends every session of p: every
// refresh family and every access token issued until now. It is idempotent.
func (s *Service) Logout(ctx context.Context, p auth.Principal, refreshToken string, everywhere bool) error {
	if !validate.UUID(p.UserID) || p.TokenID == "" {
		return apierr.New(apierr.Unauthorized, "invalid or expired token")
	}
	if everywhere || refreshToken == "" {
		if _, err := s.pool.Exec(ctx, revokeAllFamilies, p.UserID); err != nil {
			return fmt.Errorf("revoke refresh tokens of %s: %w", p.UserID, err)
		}
		if err := s.revoked.EndUser(ctx, p.UserID, s.cfg.AccessTokenTTL); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "user logged out everywhere", "user_id", p.UserID)
		return nil
	}
	sessions := []string{p.SessionID}
	if wellFormedRefreshToken(refreshToken) {
		var family string
		err := s.pool.QueryRow(ctx, revokeFamilyOfToken, hashRefreshToken(refreshToken), p.UserID).Scan(&family)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("revoke refresh tokens of %s: %w", p.UserID, err)
		}
		sessions = append(sessions, family)
	}
	for _, sid := range sessions {
		if sid == "" {
			continue
		}
		if err := s.revoked.EndSession(ctx, sid, s.cfg.AccessTokenTTL); err != nil {
			return err
		}
	}
	if err := s.revoked.Revoke(ctx, p.TokenID, p.ExpiresAt); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "user logged out", "user_id", p.UserID)
	return nil
}
