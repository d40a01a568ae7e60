package e2e

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/shared/edge"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/ratelimit"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
	"github.com/redis/go-redis/v9"
)

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func send(t *testing.T, method, url, body string, header map[string]string) (*http.Response, apiError) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	_ = decodeJSON(resp, &e)
	return resp, e
}

// The default limits, on the real platform: the fourth registration from one
// address in a minute is refused with 429 and the rate-limit headers; every
// public answer carries the security headers.
func TestEdgeLimitsRegistrationsPerAddressWithHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.limits = "" // the default table: register 3/min per IP
	p := start(t, e, &subscriber{})
	for i, name := range []string{"erin", "frank", "grace"} {
		resp, _ := send(t, "POST", p.URL()+"/api/v1/auth/register",
			`{"username":"`+name+`","email":"`+name+`@example.com","password":"correct horse battery"}`, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("registration %d answered %d", i+1, resp.StatusCode)
		}
		if got := resp.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Errorf("registration %d: RateLimit-Remaining %q, want %d", i+1, got, 2-i)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
			if resp.Header.Get(h) != want {
				t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), want)
			}
		}
	}
	resp, body := send(t, "POST", p.URL()+"/api/v1/auth/register",
		`{"username":"heidi","email":"heidi@example.com","password":"correct horse battery"}`, nil)
	if resp.StatusCode != http.StatusTooManyRequests || body.Error.Code != "rate_limited" {
		t.Fatalf("fourth registration: %d %q, want 429 rate_limited", resp.StatusCode, body.Error.Code)
	}
	if resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("refusal headers: Retry-After %q RateLimit-Limit %q RateLimit-Remaining %q",
			resp.Header.Get("Retry-After"), resp.Header.Get("RateLimit-Limit"), resp.Header.Get("RateLimit-Remaining"))
	}
}

// Logins are limited per account (5 a minute, whatever the case of the
// name), and 20 failed logins from one address ban it from every public route.
func TestEdgeLimitsLoginsPerAccountAndBansAfterFailedLogins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.limits = limitsFile(t, e.dataDir, map[string]int{"auth_login_account": 5})
	p := start(t, e, &subscriber{})
	register(t, p.URL(), "ivan")
	failed := 0
	for i := 1; i <= 5; i++ {
		if resp, _ := send(t, "POST", p.URL()+"/api/v1/auth/login", `{"login":"IVAN","password":"not the password"}`, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login %d answered %d, want 401", i, resp.StatusCode)
		}
		failed++
	}
	resp, body := send(t, "POST", p.URL()+"/api/v1/auth/login", `{"login":"ivan","password":"correct horse battery"}`, nil)
	if resp.StatusCode != http.StatusTooManyRequests || body.Error.Code != "rate_limited" {
		t.Fatalf("sixth login for the account: %d %q, want 429 rate_limited", resp.StatusCode, body.Error.Code)
	}
	for ; failed < 20; failed++ {
		login := `{"login":"nobody` + strconv.Itoa(failed) + `","password":"not the password"}`
		if resp, _ := send(t, "POST", p.URL()+"/api/v1/auth/login", login, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login %d answered %d, want 401", failed+1, resp.StatusCode)
		}
	}
	eventually(t, 3*time.Second, "20 failed logins did not ban the address", func() bool {
		resp, body := send(t, "GET", p.URL()+"/api/v1/users/me", "", nil)
		return resp.StatusCode == http.StatusForbidden && body.Error.Code == "forbidden"
	})
	if resp, _ := send(t, "GET", p.URL()+"/health/readiness", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("health checks must stay open to a banned address, got %d", resp.StatusCode)
	}
}

// limitsFile writes a rate-limit override: every default rule generous, but
// the named ones at the given limit.
func limitsFile(t testing.TB, dir string, limits map[string]int) string {
	t.Helper()
	var rules []string
	for _, pol := range ratelimit.DefaultTable() {
		n, ok := limits[pol.Name]
		if !ok {
			n = 60000
		}
		rules = append(rules, fmt.Sprintf(`{"name": %q, "limit": %d}`, pol.Name, n))
	}
	path := filepath.Join(dir, "limits-custom.json")
	if err := os.WriteFile(path, []byte(`{"rules": [`+strings.Join(rules, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A service token is refused on public routes; a cookie session must send
// its CSRF token; a body over the limit is refused before the function.
func TestEdgeRefusesServiceTokensMissingCSRFAndHugeBodies(t *testing.T) {
	t.Parallel()
	p := start(t, newEnv(t), &subscriber{})
	_, priv, _ := ed25519.GenerateKey(nil)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // unreachable: the minter signs locally
	defer rdb.Close()
	minter := servicetoken.NewMinter(servicetoken.ContextDevice, priv, servicetoken.MinterOptions{Redis: rdb, Log: logging.Discard()})
	svc, err := minter.Token(context.Background(), servicetoken.ContextUser)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code                     string
	}{
		{"service token on a public route", "GET", "/api/v1/users/me", "", map[string]string{"Authorization": "Bearer " + svc}, 401, "unauthorized"},
		{"cookie session without CSRF token", "POST", "/api/v1/auth/refresh", `{}`, map[string]string{"Cookie": "cp_refresh=abc; cp_csrf=xyz"}, 403, "forbidden"},
		{"cookie session with a wrong CSRF token", "POST", "/api/v1/auth/refresh", `{}`, map[string]string{"Cookie": "cp_refresh=abc; cp_csrf=xyz", "X-CSRF-Token": "xyz1"}, 403, "forbidden"},
		{"body over 1 MB", "POST", "/api/v1/auth/register", `{"username":"` + strings.Repeat("a", 1<<20) + `"}`, nil, 413, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := send(t, c.method, p.URL()+c.path, c.body, c.header)
			if resp.StatusCode != c.status || body.Error.Code != c.code {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body.Error.Code, c.status, c.code)
			}
		})
	}
	// A CSRF header equal to the cookie is not enough: the token must be
	// the session's own.
	if resp, body := send(t, "POST", p.URL()+"/api/v1/auth/refresh", `{}`,
		map[string]string{"Cookie": "cp_refresh=abc; cp_csrf=xyz", "X-CSRF-Token": "xyz"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a CSRF token not of the session: %d %q, want 403", resp.StatusCode, body.Error.Code)
	}
	// With the session's CSRF token the call reaches the function, which
	// judges the (bad) refresh token itself.
	resp, body := send(t, "POST", p.URL()+"/api/v1/auth/refresh", `{"refresh_token":"nope"}`,
		map[string]string{"Cookie": "cp_refresh=abc; cp_csrf=" + edge.CSRFToken("abc"), "X-CSRF-Token": edge.CSRFToken("abc")})
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("with the CSRF token: %d %q, want the function's own 400/401", resp.StatusCode, body.Error.Code)
	}
}
