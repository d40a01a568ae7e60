// Package edge is the protection every public function gets from its host
// without code of its own: security headers, the IP deny list,
// refusal of service tokens, the caller's identity, CSRF double-submit for
// cookie sessions, rate limits at IP, user, endpoint and account level, body
// size limits, and the auto-ban's count of failed logins.
package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"

	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/clientip"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/ipban"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/ratelimit"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Config is the edge's configuration.
type Config struct {
	// BehindTLS sends Strict-Transport-Security (set it when an ingress
	// terminates TLS in front of the platform).
	BehindTLS      bool  `env:"CLOUDPHONE_BEHIND_TLS"`
	MaxBodyBytes   int64 `env:"CLOUDPHONE_MAX_BODY_BYTES" default:"1048576"`
	MaxUploadBytes int64 `env:"CLOUDPHONE_MAX_UPLOAD_BYTES" default:"209715200"`
	// RedisPrefix goes before the edge's Redis keys, so that several
	// platforms can share one Redis.
	RedisPrefix string `env:"CLOUDPHONE_REDIS_PREFIX"`
	// UserTokenPublicKey verifies access tokens, so per-user limits apply.
	UserTokenPublicKey string `env:"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY" secret:"user-token-public-key"`
	// ClearIPBans lifts every ban kept in Redis when the edge is made: the
	// way back in for an operator whom a ban locked out of the admin API.
	ClearIPBans bool `env:"CLOUDPHONE_CLEAR_IP_BANS"`
}

// Cookie names of the web console's session: the refresh token
// lives in an HttpOnly cookie; the CSRF token is readable by the page and
// must come back in the CSRFHeader of every cookie-authenticated call.
const (
	SessionCookie = "cp_refresh"
	CSRFCookie    = "cp_csrf"
	CSRFHeader    = "X-CSRF-Token"
)

// The routes the edge treats apart: logins (failed ones count towards the
// auto-ban) and app uploads (a larger body limit).
const (
	pathLogin  = "/api/v1/auth/login"
	pathUpload = "/api/v1/apps"
)

// Edge holds what the protection needs. Safe for concurrent use.
type Edge struct {
	cfg      Config
	log      *slog.Logger
	ips      *clientip.Resolver
	bans     *ipban.Denylist
	limits   *ratelimit.Limits
	verifier *auth.Verifier // nil when no public key is configured
	limit    func(http.Handler) http.Handler
}

// New builds the edge from env on rdb, checking logouts in revoked. Redis is
// not contacted here (unless CLOUDPHONE_CLEAR_IP_BANS asks to lift the bans); when it is unreachable later, limits fall back to
// per-process counters and the configured deny list still applies.
func New(env config.Source, rdb *redis.Client, revoked auth.Revocations, log *slog.Logger, m *metrics.Metrics) (*Edge, error) {
	var cfg Config
	if err := config.Load(env, &cfg); err != nil {
		return nil, err
	}
	ips, err := clientip.Load(env)
	if err != nil {
		return nil, err
	}
	bans, err := ipban.New(rdb, ipban.Options{Static: ipban.StaticFromConfig(env), Prefix: cfg.RedisPrefix + "ipban:", Log: log, Metrics: m})
	if err != nil {
		return nil, err
	}
	if cfg.ClearIPBans {
		n, err := bans.Clear(context.Background())
		if err != nil {
			return nil, fmt.Errorf("edge: CLOUDPHONE_CLEAR_IP_BANS: %w", err)
		}
		log.Warn("every IP ban kept in Redis was lifted (CLOUDPHONE_CLEAR_IP_BANS); unset it again", "lifted", n)
	}
	table, err := ratelimit.LoadTable(env)
	if err != nil {
		return nil, err
	}
	shared, err := ratelimit.NewRedis(rdb, ratelimit.RedisOptions{Prefix: cfg.RedisPrefix + "rl:"})
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.NewResilient(shared, ratelimit.NewLocal(), ratelimit.ResilientOptions{Log: log, Metrics: m})
	if err != nil {
		return nil, err
	}
	limits, err := ratelimit.NewLimits(limiter, table, m)
	if err != nil {
		return nil, err
	}
	e := &Edge{cfg: cfg, log: log, ips: ips, bans: bans, limits: limits}
	if cfg.UserTokenPublicKey != "" {
		pub, err := auth.ParsePublicKey(cfg.UserTokenPublicKey)
		if err != nil {
			return nil, fmt.Errorf("edge: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY: %w", err)
		}
		e.verifier = auth.NewVerifier(pub, revoked)
	}
	e.limit = ratelimit.Middleware(limits, ratelimit.MiddlewareOptions{
		ClientIP: ips.ClientIP,
		UserID: func(r *http.Request) (string, bool) {
			p, ok := auth.PrincipalFrom(r.Context())
			return p.UserID, ok
		},
		Key:       loginAccount,
		OnRefused: e.refused,
		Log:       log,
	})
	return e, nil
}

// ClientIP is the client address of r as the edge sees it (see
// CLOUDPHONE_TRUSTED_PROXIES).
func (e *Edge) ClientIP(r *http.Request) netip.Addr { return e.ips.ClientIP(r) }

// Bans is the deny list, for the admin routes that manage it.
func (e *Edge) Bans() *ipban.Denylist { return e.bans }

// Wrap protects next, a public function.
func (e *Edge) Wrap(next http.Handler) http.Handler {
	limited := e.limit(e.countFailedLogins(next))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.headers(w.Header())
		ip := e.ips.ClientIP(r)
		if entry, banned := e.bans.Banned(r.Context(), ip); banned {
			e.log.InfoContext(r.Context(), "request from a banned address refused", "ip", ip.String(), "entry", entry.Range.String())
			apierr.Write(w, r, e.log, apierr.New(apierr.Forbidden, "requests from this address are blocked"))
			return
		}
		token := auth.BearerToken(r)
		verified := false
		if token != "" && e.verifier != nil {
			// A good user token identifies the caller for the per-user
			// limits; a bad one is left for the function to refuse.
			if p, err := e.verifier.Verify(r.Context(), token); err == nil {
				r = r.WithContext(auth.WithPrincipal(r.Context(), p))
				verified = true
			}
		}
		if token != "" && !verified && servicetoken.IsServiceToken(token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cloudphone"`)
			apierr.Write(w, r, e.log, apierr.New(apierr.Unauthorized, "service tokens are not accepted here"))
			return
		}
		if token == "" && !csrfOK(r) {
			apierr.Write(w, r, e.log, apierr.New(apierr.Forbidden, "missing or wrong CSRF token"))
			return
		}
		max := e.cfg.MaxBodyBytes
		if r.Method == http.MethodPost && r.URL.Path == pathUpload {
			max = e.cfg.MaxUploadBytes
		}
		if r.ContentLength > max {
			apierr.Write(w, r, e.log, apierr.New(apierr.TooLarge, "request body is over %d bytes", max))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		limited.ServeHTTP(w, r)
	})
}

func (e *Edge) headers(h http.Header) { setSecurityHeaders(h, e.cfg.BehindTLS) }

func setSecurityHeaders(h http.Header, behindTLS bool) {
	// One allocation for every value (each a slice of its own capacity, so
	// an Add to one cannot touch another); the names are canonical already.
	v := [...]string{"nosniff", "DENY", "no-referrer", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
		"max-age=31536000; includeSubDomains"}
	vs := v[:]
	if !behindTLS {
		vs = v[:4]
	}
	vs = append([]string(nil), vs...)
	h["X-Content-Type-Options"] = vs[0:1:1]
	h["X-Frame-Options"] = vs[1:2:2]
	h["Referrer-Policy"] = vs[2:3:3]
	h["Content-Security-Policy"] = vs[3:4:4]
	if behindTLS {
		h["Strict-Transport-Security"] = vs[4:5:5]
	}
}

// SecurityHeaders sets the security headers on every answer of next,
// whatever answers it (health probes, the broker ingress, internal routes,
// a 404 or a panic's 500 included); a handler may still replace one (the
// console sets its own Content-Security-Policy). behindTLS adds
// Strict-Transport-Security.
func SecurityHeaders(behindTLS bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			setSecurityHeaders(w.Header(), behindTLS)
			next.ServeHTTP(w, r)
		})
	}
}

// CSRFToken is the CSRF token of the cookie session whose refresh token is
// refresh: a hash of it, so that a token is good for its own session only (a
// token obtained in one session, or planted in a victim's cookies, is
// refused in any other) and needs no state. The refresh token is a secret
// the page never sees (HttpOnly), so the hash cannot be forged, and it
// reveals nothing of the refresh token. A refresh rotates both.
func CSRFToken(refresh string) string {
	sum := sha256.Sum256([]byte("cloudphone csrf v1\x00" + refresh))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// csrfOK enforces the CSRF token on state-changing calls that a browser
// authenticates with the session cookie: the CSRF header must be the token
// of the session cookie sent with it (CSRFToken). Calls without the session
// cookie (bearer tokens, anonymous) need none.
func csrfOK(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	session, err := r.Cookie(SessionCookie)
	if err != nil {
		return true
	}
	h := r.Header.Get(CSRFHeader)
	return h != "" && subtle.ConstantTimeCompare([]byte(h), []byte(CSRFToken(session.Value))) == 1
}

// refused counts a rate-limit refusal towards the IP's auto-ban.
func (e *Edge) refused(ctx context.Context, ip netip.Addr) {
	if banned, err := e.bans.RecordRefusal(ctx, ip); err != nil {
		e.log.WarnContext(ctx, "refusal not counted for the auto-ban", "ip", ip.String(), "err", err)
	} else if banned {
		e.log.WarnContext(ctx, "address banned after repeated refusals", "ip", ip.String())
	}
}

// countFailedLogins counts every refused login (401) towards the IP's auto-ban.
func (e *Edge) countFailedLogins(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != pathLogin {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusUnauthorized {
			ip := e.ips.ClientIP(r)
			if banned, err := e.bans.RecordFailedLogin(r.Context(), ip); err != nil {
				e.log.WarnContext(r.Context(), "failed login not counted for the auto-ban", "ip", ip.String(), "err", err)
			} else if banned {
				e.log.WarnContext(r.Context(), "address banned after repeated failed logins", "ip", ip.String())
			}
		}
	})
}

// loginAccount keys the per-account login limit by the account a login
// request names (lower-cased), read without consuming the body.
func loginAccount(r *http.Request, p ratelimit.Policy) (string, bool) {
	if p.Name != ratelimit.RuleLoginAccount || r.Body == nil {
		return "", false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if err != nil {
		return "", false
	}
	var req struct {
		Login string `json:"login"`
	}
	if json.Unmarshal(body, &req) != nil || strings.TrimSpace(req.Login) == "" {
		return "", false
	}
	return strings.ToLower(strings.TrimSpace(req.Login)), true
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}
