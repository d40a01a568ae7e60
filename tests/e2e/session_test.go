package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// The web console's session: login puts the refresh token in an HttpOnly,
// SameSite=Strict cookie (not in the body) beside a CSRF token; refresh by
// cookie needs the CSRF header (the edge checks it) and rotates both; logout
// ends the session.
func TestCookieSessionKeepsTheRefreshTokenOutOfReachAndNeedsTheCSRFToken(t *testing.T) {
	t.Parallel()
	p := start(t, newEnv(t), &subscriber{})
	register(t, p.URL(), "kate")
	// The cookies are Secure, which a cookie jar would not send to this plain
	// HTTP test host, so the test carries them itself.
	client := &http.Client{}
	post := func(path, body string, header map[string]string, cookies []*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", p.URL()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		for _, c := range cookies {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := post("/api/v1/auth/login", `{"login":"kate","password":"correct horse battery"}`, map[string]string{"X-Session": "cookie"}, nil)
	var tokens struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	_ = decodeJSON(resp, &tokens)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tokens.AccessToken == "" || tokens.RefreshToken != "" {
		t.Fatalf("cookie login: %d, body refresh token %q (must be empty)", resp.StatusCode, tokens.RefreshToken)
	}
	cookies := map[string]*http.Cookie{}
	for _, c := range resp.Cookies() {
		cookies[c.Name] = c
	}
	session, csrf := cookies["cp_refresh"], cookies["cp_csrf"]
	if session == nil || csrf == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || csrf.HttpOnly || csrf.Value == "" {
		t.Fatalf("session cookies: %+v %+v", session, csrf)
	}
	jarCookies := []*http.Cookie{session, csrf}

	if resp := post("/api/v1/auth/refresh", `{}`, nil, jarCookies); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refresh by cookie without the CSRF header: %d, want 403", resp.StatusCode)
	}
	resp = post("/api/v1/auth/refresh", `{}`, map[string]string{"X-CSRF-Token": csrf.Value}, jarCookies)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh by cookie with the CSRF header: %d", resp.StatusCode)
	}
	var rotated, rotatedCSRF *http.Cookie
	for _, c := range resp.Cookies() {
		switch c.Name {
		case "cp_refresh":
			rotated = c
		case "cp_csrf":
			rotatedCSRF = c
		}
	}
	if rotated == nil || rotated.Value == session.Value {
		t.Fatal("refresh did not rotate the session cookie")
	}
	// Once the rotated cookie has been used, the old one is dead: presenting
	// it again is reuse. (Before that, within a few seconds, it is taken for
	// a retry whose answer the browser lost.)
	if rotatedCSRF == nil {
		t.Fatal("refresh did not rotate the CSRF cookie with the session")
	}
	resp = post("/api/v1/auth/refresh", `{}`, map[string]string{"X-CSRF-Token": rotatedCSRF.Value}, []*http.Cookie{rotated, rotatedCSRF})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh with the rotated cookie: %d", resp.StatusCode)
	}
	if resp := post("/api/v1/auth/refresh", `{}`, map[string]string{"X-CSRF-Token": csrf.Value}, jarCookies); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reusing the rotated-out cookie: %d, want 401", resp.StatusCode)
	}
}

// Logging out refuses the access token on the very next request, even though
// the edge had just verified (and remembered) it.
func TestLogoutRefusesTheAccessTokenOnTheNextRequest(t *testing.T) {
	t.Parallel()
	p := start(t, newEnv(t), &subscriber{})
	register(t, p.URL(), "liam")
	for i := range 20 {
		tok := login(t, p.URL(), "liam", "correct horse battery")
		bearer := map[string]string{"Authorization": "Bearer " + tok}
		if resp, _ := send(t, "GET", p.URL()+"/api/v1/users/me", "", bearer); resp.StatusCode != http.StatusOK {
			t.Fatalf("round %d: before logout %d", i, resp.StatusCode)
		}
		if resp, _ := send(t, "POST", p.URL()+"/api/v1/auth/logout", "", bearer); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("round %d: logout %d", i, resp.StatusCode)
		}
		if resp, _ := send(t, "GET", p.URL()+"/api/v1/users/me", "", bearer); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("round %d: the token still worked right after logout: %d", i, resp.StatusCode)
		}
	}
}

// The CSRF token is bound to its session: a token from another session (the
// attacker's own, planted in the victim's cookies with a matching header)
// is refused, while the session's own token is taken.
func TestACSRFTokenFromAnotherSessionIsRefused(t *testing.T) {
	t.Parallel()
	p := start(t, newEnv(t), &subscriber{})
	register(t, p.URL(), "mona")
	register(t, p.URL(), "mallory")
	post := func(path string, header map[string]string, cookies map[string]string) *http.Response {
		t.Helper()
		body := `{}`
		if path == "/api/v1/auth/login" {
			body = header["body"]
			delete(header, "body")
		}
		req, _ := http.NewRequest("POST", p.URL()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		for k, v := range cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	session := func(name string) (refresh, csrf string) {
		resp := post("/api/v1/auth/login", map[string]string{"X-Session": "cookie",
			"body": `{"login":"` + name + `","password":"correct horse battery"}`}, nil)
		for _, c := range resp.Cookies() {
			switch c.Name {
			case "cp_refresh":
				refresh = c.Value
			case "cp_csrf":
				csrf = c.Value
			}
		}
		if resp.StatusCode != http.StatusOK || refresh == "" || csrf == "" {
			t.Fatalf("cookie login of %s: %d", name, resp.StatusCode)
		}
		return refresh, csrf
	}
	victim, victimCSRF := session("mona")
	_, attackerCSRF := session("mallory")
	_, otherVictimCSRF := session("mona") // another session of the same user

	for name, token := range map[string]string{"another user's session": attackerCSRF, "another session of the same user": otherVictimCSRF} {
		resp := post("/api/v1/auth/refresh", map[string]string{"X-CSRF-Token": token},
			map[string]string{"cp_refresh": victim, "cp_csrf": token})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("refresh with the CSRF token of %s: %d, want 403", name, resp.StatusCode)
		}
	}
	resp := post("/api/v1/auth/refresh", map[string]string{"X-CSRF-Token": victimCSRF},
		map[string]string{"cp_refresh": victim, "cp_csrf": victimCSRF})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh with the session's own CSRF token: %d", resp.StatusCode)
	}
}
