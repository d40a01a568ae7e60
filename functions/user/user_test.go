package user_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/logging"
)

var ctx = context.Background()

func count(t *testing.T, env usertest.Env, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestRegisterWritesUserQuotaAndEventInOneTransaction(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u, err := env.Service.Register(ctx, user.RegisterRequest{Username: "Alice.B", Email: "Alice@Example.com", Password: usertest.Password})
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice.b" || u.Email != "alice@example.com" || !slices.Equal(u.Roles, []string{"user"}) || u.Status != "active" {
		t.Fatalf("user = %+v", u)
	}
	q, err := env.Service.Quota(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if q.Limits != user.FreeTier || q.Usage != (user.Usage{}) {
		t.Fatalf("quota = %+v, want the free tier and no usage", q)
	}
	if q.Limits.MaxDevices != 1 || q.Limits.MaxRunningDevices != 1 || q.Limits.MaxCPUCores != 2 ||
		q.Limits.MaxMemoryMB != 2048 || q.Limits.MaxStorageGB != 16 || q.Limits.DeviceMaxCPUCores != 2 || q.Limits.DeviceMaxMemoryMB != 2048 {
		t.Fatalf("free tier = %+v", q.Limits)
	}
	var typ, source, subject string
	var payload []byte
	if err := env.Pool.QueryRow(ctx, `SELECT type, source, subject, payload FROM outbox`).Scan(&typ, &source, &subject, &payload); err != nil {
		t.Fatalf("outbox row: %v", err)
	}
	if typ != userevents.EventRegistered || source != "/cloudphone/user/auth-register" || subject != u.ID {
		t.Fatalf("outbox row = %s %s %s", typ, source, subject)
	}
	var ce struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(payload, &ce); err != nil {
		t.Fatal(err)
	}
	if ce.Data["schema_version"] != float64(1) || ce.Data["user_id"] != u.ID || ce.Data["username"] != "alice.b" ||
		ce.Data["email"] != "alice@example.com" || ce.Data["registered_at"] == nil {
		t.Fatalf("event data = %v", ce.Data)
	}
	var hash string
	if err := env.Pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, u.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(hash, usertest.Password) {
		t.Fatalf("stored hash %q is not an argon2id PHC string", hash)
	}
}

func TestRegisterFailureAfterUserInsertLeavesNothing(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	boom := errors.New("forced failure")
	user.SetAfterUserInsert(env.Service, func(ctx context.Context, tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil || n != 1 {
			t.Errorf("inside the transaction: %d users, %v", n, err)
		}
		return boom
	})
	_, err := env.Service.Register(ctx, user.RegisterRequest{Username: "bob", Email: "bob@example.com", Password: usertest.Password})
	if !errors.Is(err, boom) {
		t.Fatalf("Register = %v, want the forced failure", err)
	}
	for _, table := range []string{"users", "quotas", "outbox"} {
		if n := count(t, env, `SELECT count(*) FROM `+table); n != 0 {
			t.Errorf("%s has %d rows after the rollback", table, n)
		}
	}
}

func TestRegisterDuplicateUsernameOrEmailIsConflict(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "carol")
	for name, req := range map[string]user.RegisterRequest{
		"same username other case": {Username: "CAROL", Email: "other@example.com", Password: usertest.Password},
		"same email other case":    {Username: "carol2", Email: "Carol@Example.COM", Password: usertest.Password},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := env.Service.Register(ctx, req)
			if !apierr.Is(err, apierr.Conflict) {
				t.Fatalf("Register = %v, want conflict", err)
			}
		})
	}
	if n := count(t, env, `SELECT count(*) FROM outbox`); n != 1 {
		t.Fatalf("outbox has %d rows, want 1", n)
	}
}

func TestLoginByUsernameOrEmailIssuesVerifiableTokens(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "dave")
	for _, login := range []string{"dave", "DAVE", "dave@example.com", "Dave@Example.com"} {
		tok, err := env.Service.Login(ctx, user.LoginRequest{Login: login, Password: usertest.Password})
		if err != nil {
			t.Fatalf("login %q: %v", login, err)
		}
		if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.RefreshToken == "" {
			t.Fatalf("tokens = %+v", tok)
		}
		p, err := env.Service.Verifier().Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if p.UserID != u.ID || p.Username != "dave" || !p.HasRole("user") || !p.HasPermission("device:create") || p.HasPermission("admin:users") {
			t.Fatalf("principal = %+v", p)
		}
	}
	if n := count(t, env, `SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = $1`, u.ID); n != 4 {
		t.Fatalf("%d refresh families, want one per login", n)
	}
}

func TestLoginRefusalsLookAlike(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "erin")
	for name, req := range map[string]user.LoginRequest{
		"wrong password": {Login: "erin", Password: "wrong password"},
		"unknown user":   {Login: "nobody", Password: usertest.Password},
		"unknown email":  {Login: "nobody@example.com", Password: usertest.Password},
	} {
		_, err := env.Service.Login(ctx, req)
		if !apierr.Is(err, apierr.Unauthorized) || apierr.As(err).Message != "invalid login or password" {
			t.Errorf("%s: Login = %v", name, err)
		}
	}
	_, err := env.Service.Login(ctx, user.LoginRequest{Login: "", Password: ""})
	if !apierr.Is(err, apierr.Invalid) {
		t.Errorf("empty login: %v, want invalid", err)
	}
}

func TestFiveWrongPasswordsLockTheAccountEvenForTheRightOne(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "frank")
	for i := range 5 {
		if _, err := env.Service.Login(ctx, user.LoginRequest{Login: "frank", Password: "wrong password"}); !apierr.Is(err, apierr.Unauthorized) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	var lockedFor time.Duration
	if err := env.Pool.QueryRow(ctx, `SELECT extract(epoch FROM locked_until - now())::float8 * 1e9 FROM users WHERE id = $1`, u.ID).
		Scan((*float64Duration)(&lockedFor)); err != nil {
		t.Fatal(err)
	}
	if lockedFor < 14*time.Minute || lockedFor > 15*time.Minute {
		t.Fatalf("locked for %v, want ~15m", lockedFor)
	}
	_, err := env.Service.Login(ctx, user.LoginRequest{Login: "frank", Password: usertest.Password})
	if !apierr.Is(err, apierr.Unauthorized) || apierr.As(err).Message != "invalid login or password" {
		t.Fatalf("right password while locked: %v, want the generic 401", err)
	}
	// Once the lock has passed, the right password works and clears the counters.
	if _, err := env.Pool.Exec(ctx, `UPDATE users SET locked_until = now() - interval '1 second' WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	env.Login(t, "frank")
	if n := count(t, env, `SELECT failed_logins + (locked_until IS NOT NULL)::int FROM users WHERE id = $1`, u.ID); n != 0 {
		t.Fatalf("counters not reset after a good login")
	}
}

// float64Duration scans a float number of nanoseconds into a time.Duration.
type float64Duration time.Duration

func (d *float64Duration) Scan(src any) error {
	f, ok := src.(float64)
	if !ok {
		return errors.New("not a float")
	}
	*d = float64Duration(f)
	return nil
}

func TestFailuresBelowTheLimitDoNotLock(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "gina")
	for range 4 {
		_, _ = env.Service.Login(ctx, user.LoginRequest{Login: "gina", Password: "wrong password"})
	}
	env.Login(t, "gina") // resets the counter
	for range 4 {
		_, _ = env.Service.Login(ctx, user.LoginRequest{Login: "gina", Password: "wrong password"})
	}
	env.Login(t, "gina")
}

func TestDisabledAccountCannotLogInOrRefresh(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "hank")
	tok := env.Login(t, "hank")
	if _, err := env.Pool.Exec(ctx, `UPDATE users SET status = 'disabled' WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Login(ctx, user.LoginRequest{Login: "hank", Password: usertest.Password}); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("login of a disabled account: %v", err)
	}
	if _, err := env.Service.Refresh(ctx, tok.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("refresh of a disabled account: %v", err)
	}
}

func TestUnknownUserLoginCostsAboutAsMuchAsAKnownOne(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "ivan")
	measure := func(login string) time.Duration {
		start := time.Now()
		_, err := env.Service.Login(ctx, user.LoginRequest{Login: login, Password: "wrong password"})
		if !apierr.Is(err, apierr.Unauthorized) {
			t.Fatalf("login %s: %v", login, err)
		}
		return time.Since(start)
	}
	var known, unknown []time.Duration
	for i := range 6 {
		if i == 3 { // stay below the lock-out
			if _, err := env.Pool.Exec(ctx, `UPDATE users SET failed_logins = 0`); err != nil {
				t.Fatal(err)
			}
		}
		known = append(known, measure("ivan"))
		unknown = append(unknown, measure("nobody-"+string(rune('a'+i))))
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	k, u := median(known), median(unknown)
	t.Logf("median known %v, unknown %v", k, u)
	if u*3 < k || k*3 < u {
		t.Fatalf("unknown-user login takes %v, known-user %v: not within 3x", u, k)
	}
}

func TestRefreshRotatesWithinTheFamily(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "judy")
	first := env.Login(t, "judy")
	second, err := env.Service.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh returned the same tokens")
	}
	if _, err := env.Service.Verifier().Verify(ctx, second.AccessToken); err != nil {
		t.Fatalf("new access token: %v", err)
	}
	third, err := env.Service.Refresh(ctx, second.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, env, `SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = $1`, u.ID); n != 1 {
		t.Fatalf("%d families, want 1", n)
	}
	if n := count(t, env, `SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL AND replaced_by IS NOT NULL`); n != 2 {
		t.Fatalf("%d used tokens with a successor, want 2", n)
	}
	_ = third
	for name, tok := range map[string]string{"garbage": "not-a-token", "unknown": strings.Repeat("A", 43)} {
		if _, err := env.Service.Refresh(ctx, tok); !apierr.Is(err, apierr.Unauthorized) {
			t.Errorf("%s: %v, want unauthorized", name, err)
		}
	}
}

func TestReusedRefreshTokenRevokesTheWholeFamily(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "kate")
	other := env.Login(t, "kate") // another session: a family of its own
	first := env.Login(t, "kate")
	second, err := env.Service.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Refresh(ctx, first.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("reuse of a used token: %v, want unauthorized", err)
	}
	if _, err := env.Service.Refresh(ctx, second.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("newer token after reuse: %v, want unauthorized (family revoked)", err)
	}
	if _, err := env.Service.Refresh(ctx, other.RefreshToken); err != nil {
		t.Fatalf("another session's family was revoked too: %v", err)
	}
}

func TestRefreshRetriedWithinTheGraceReplacesTheUnusedAnswer(t *testing.T) {
	t.Parallel()
	env := usertest.New(t, func(c *user.Config) { c.RefreshReuseGrace = time.Minute })
	env.Register(t, "lena")
	first := env.Login(t, "lena")
	lost, err := env.Service.Refresh(ctx, first.RefreshToken) // its answer never reached the client
	if err != nil {
		t.Fatal(err)
	}
	kept, err := env.Service.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("the same token again within the grace, its successor unused: %v, want new tokens", err)
	}
	if kept.RefreshToken == lost.RefreshToken || kept.AccessToken == "" {
		t.Fatalf("the retry answered %+v; want a refresh token of its own", kept)
	}
	next, err := env.Service.Refresh(ctx, kept.RefreshToken)
	if err != nil {
		t.Fatalf("the retry's token: %v", err)
	}
	// Now that the family moved on, the first token's use is theft.
	if _, err := env.Service.Refresh(ctx, first.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("the first token after its successors were used: %v, want unauthorized", err)
	}
	if _, err := env.Service.Refresh(ctx, next.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("the newest token after the reuse: %v, want unauthorized (family revoked)", err)
	}
}

func TestRefreshTokenUsedAgainAfterItsSuccessorRevokesTheFamilyEvenWithinTheGrace(t *testing.T) {
	t.Parallel()
	env := usertest.New(t, func(c *user.Config) { c.RefreshReuseGrace = time.Minute })
	env.Register(t, "mona")
	first := env.Login(t, "mona")
	second, err := env.Service.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	third, err := env.Service.Refresh(ctx, second.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Refresh(ctx, first.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("reuse of a token whose successor was used: %v, want unauthorized", err)
	}
	if _, err := env.Service.Refresh(ctx, third.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("newest token after reuse: %v, want unauthorized (family revoked)", err)
	}
}

func TestExpiredRefreshTokenIsRefused(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "liam")
	tok := env.Login(t, "liam")
	if _, err := env.Pool.Exec(ctx, `UPDATE refresh_tokens SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Refresh(ctx, tok.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("expired: %v, want unauthorized", err)
	}
}

func TestLogoutRevokesAccessTokenAndRefreshFamilies(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "mona")
	a := env.Login(t, "mona")
	b := env.Login(t, "mona")
	p, err := env.Service.Verifier().Verify(ctx, a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Service.Logout(ctx, p, a.RefreshToken, false); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Verifier().Verify(ctx, a.AccessToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("access token after logout: %v", err)
	}
	if _, err := env.Service.Refresh(ctx, a.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("refresh token after logout: %v", err)
	}
	// The other session lives on until a logout without a refresh token.
	pb, err := env.Service.Verifier().Verify(ctx, b.AccessToken)
	if err != nil {
		t.Fatalf("other session's access token: %v", err)
	}
	b2, err := env.Service.Refresh(ctx, b.RefreshToken)
	if err != nil {
		t.Fatalf("other session's refresh: %v", err)
	}
	if err := env.Service.Logout(ctx, pb, "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Refresh(ctx, b2.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("refresh after logout of all sessions: %v", err)
	}
	if err := env.Service.Logout(ctx, pb, "", false); err != nil {
		t.Fatalf("second logout: %v", err)
	}
}

func TestLogoutIgnoresAnotherUsersRefreshToken(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	env.Register(t, "nina")
	env.Register(t, "omar")
	nina := env.Login(t, "nina")
	omar := env.Login(t, "omar")
	p, _ := env.Service.Verifier().Verify(ctx, nina.AccessToken)
	if err := env.Service.Logout(ctx, p, omar.RefreshToken, false); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Refresh(ctx, omar.RefreshToken); err != nil {
		t.Fatalf("omar's session was revoked by nina's logout: %v", err)
	}
}

func TestProfileShowsRolesAndPermissions(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "pete")
	p, err := env.Service.Profile(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != u.ID || p.Username != "pete" || p.Email != "pete@example.com" || p.Status != "active" ||
		!slices.Equal(p.Roles, []string{"user"}) || !slices.Equal(p.Permissions, user.Permissions([]string{"user"})) {
		t.Fatalf("profile = %+v", p)
	}
	for _, id := range []string{"00000000-0000-4000-8000-000000000000", "not-a-uuid"} {
		if _, err := env.Service.Profile(ctx, id); !apierr.Is(err, apierr.NotFound) {
			t.Errorf("Profile(%s) = %v, want not found", id, err)
		}
		if _, err := env.Service.Quota(ctx, id); !apierr.Is(err, apierr.NotFound) {
			t.Errorf("Quota(%s) = %v, want not found", id, err)
		}
	}
}

func TestPermissionsFollowRoles(t *testing.T) {
	t.Parallel()
	userPerms := []string{"app:delete", "app:read", "app:upload", "billing:order", "billing:read",
		"device:create", "device:delete", "device:operate", "device:read", "notification:read"}
	if got := user.Permissions([]string{"user"}); !slices.Equal(got, userPerms) {
		t.Fatalf("user permissions = %v", got)
	}
	admin := user.Permissions([]string{"admin", "user"})
	want := append(slices.Clone(userPerms), "admin:credit", "admin:ip-bans", "admin:nodes", "admin:plans", "admin:users")
	slices.Sort(want)
	if !slices.Equal(admin, want) {
		t.Fatalf("admin permissions = %v", admin)
	}
	if got := user.Permissions([]string{"nobody"}); len(got) != 0 {
		t.Fatalf("unknown role grants %v", got)
	}
}

func TestEnsureAdminIsIdempotent(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	created, err := env.Service.EnsureAdmin(ctx, "admin password 1")
	if err != nil || !created {
		t.Fatalf("first EnsureAdmin = %v, %v", created, err)
	}
	created, err = env.Service.EnsureAdmin(ctx, "another password")
	if err != nil || created {
		t.Fatalf("second EnsureAdmin = %v, %v", created, err)
	}
	tok, err := env.Service.Login(ctx, user.LoginRequest{Login: "admin@localhost", Password: "admin password 1"})
	if err != nil {
		t.Fatalf("admin login with the first password: %v", err)
	}
	p, err := env.Service.Verifier().Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasRole("admin") || !p.HasRole("user") || !p.HasPermission("admin:users") || !p.HasPermission("device:create") {
		t.Fatalf("admin principal = %+v", p)
	}
	if n := count(t, env, `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users, want 1", n)
	}
	if n := count(t, env, `SELECT count(*) FROM quotas`); n != 1 {
		t.Fatalf("%d quotas, want 1", n)
	}
	if _, err := env.Service.EnsureAdmin(ctx, "short"); err == nil {
		t.Fatal("EnsureAdmin accepted a password that breaks the rules")
	}
}

func TestAdminUsernameCannotBeRegistered(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	_, err := env.Service.Register(ctx, user.RegisterRequest{Username: "Admin", Email: "a@example.com", Password: usertest.Password})
	if !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("Register(admin) = %v, want invalid", err)
	}
}

func TestPasswordHashRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := user.HashPassword(ctx, "a long password")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := user.HashPassword(ctx, "a long password")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"a long password": true, "a long passworD": false, "": false} {
		if ok, err := user.CheckPassword(ctx, h, pw); err != nil || ok != want {
			t.Errorf("CheckPassword(%q) = %v, %v", pw, ok, err)
		}
	}
	if ok, err := user.CheckPassword(ctx, user.DummyHash, "anything"); err != nil || ok {
		t.Fatalf("dummy hash: %v, %v", ok, err)
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "$bcrypt$x", "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$N5pdqOLsSX2GPUf3ZcYJhOWHW0ZsdNLEjlOLTKjJz8c"} {
		if _, err := user.CheckPassword(ctx, bad, "x"); err == nil {
			t.Errorf("CheckPassword accepted hash %q", bad)
		}
	}
}

func TestConfigDefaultsAndOpenChecks(t *testing.T) {
	t.Parallel()
	priv, pub, _ := auth.GenerateKeyStrings()
	var cfg user.Config
	if err := config.Load(config.FromMap(map[string]string{"CLOUDPHONE_USER_TOKEN_KEY": priv}), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.AccessTokenTTL != 15*time.Minute || cfg.RefreshTokenTTL != 168*time.Hour || cfg.LoginMaxFailures != 5 || cfg.LoginLock != 15*time.Minute || cfg.TokenKey != priv {
		t.Fatalf("config = %+v", cfg)
	}
	env := usertest.New(t)
	_, otherPub, _ := auth.GenerateKeyStrings()
	for name, c := range map[string]user.Config{
		"no key":         {AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, LoginMaxFailures: 5, LoginLock: time.Minute},
		"bad key":        {TokenKey: "xx", AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, LoginMaxFailures: 5, LoginLock: time.Minute},
		"mismatched key": {TokenKey: priv, TokenPublicKey: otherPub, AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, LoginMaxFailures: 5, LoginLock: time.Minute},
		"zero ttl":       {TokenKey: priv, TokenPublicKey: pub, RefreshTokenTTL: time.Hour, LoginMaxFailures: 5, LoginLock: time.Minute},
	} {
		if _, err := user.Open(ctx, env.Pool, env.Redis, c, logging.Discard()); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
	if _, err := user.Open(ctx, nil, env.Redis, cfg, logging.Discard()); err == nil {
		t.Error("Open without a pool succeeded")
	}
	if _, err := user.Open(ctx, env.Pool, env.Redis, cfg, logging.Discard()); err != nil {
		t.Errorf("Open with defaults and only the private key: %v", err)
	}

	// A function that only verifies (profile, logout) has the public key alone:
	// it verifies the tokens others sign, and cannot sign any itself.
	verifyOnly := cfg
	verifyOnly.TokenKey, verifyOnly.TokenPublicKey = "", pub
	v, err := user.Open(ctx, env.Pool, env.Redis, verifyOnly, logging.Discard())
	if err != nil {
		t.Fatalf("Open with only the public key: %v", err)
	}
	signer := cfg
	signer.TokenPublicKey = pub
	s, err := user.Open(ctx, env.Pool, env.Redis, signer, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, user.RegisterRequest{Username: "verifyonly", Email: "verifyonly@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	tokens, err := s.Login(ctx, user.LoginRequest{Login: "verifyonly", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verifier().Verify(ctx, tokens.AccessToken); err != nil {
		t.Errorf("the public-key-only service refused a valid token: %v", err)
	}
	if _, err := v.Login(ctx, user.LoginRequest{Login: "verifyonly", Password: "correct horse battery"}); err == nil {
		t.Error("a service without the private key signed a token")
	}
}
