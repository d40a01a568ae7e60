package authlogin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user/authlogin"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

type bundle struct {
	env usertest.Env
	fn  *authlogin.Function
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	return bundle{env: env, fn: authlogin.New(env.Service, logging.Discard())}
}

func (b bundle) post(body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/auth/login", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	b.fn.Handle(w, r)
	return w
}

func TestLoginByUsernameAndByEmailReturnsTokensNotCached(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "quinn")
	for _, l := range []string{"quinn", "quinn@example.com"} {
		w := b.post(`{"login":"` + l + `","password":"` + usertest.Password + `"}`)
		if w.Code != http.StatusOK {
			t.Fatalf("login %s: %d %s", l, w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control = %q", w.Header().Get("Cache-Control"))
		}
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got["token_type"] != "Bearer" || got["expires_in"] != float64(900) || got["access_token"] == "" || got["refresh_token"] == "" || len(got) != 4 {
			t.Fatalf("body = %s", w.Body)
		}
	}
}

func TestLoginRefusalsAreOneGeneric401(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "rita")
	var bodies []string
	for _, body := range []string{
		`{"login":"rita","password":"wrong password"}`,
		`{"login":"nobody","password":"wrong password"}`,
	} {
		w := b.post(body)
		if w.Code != http.StatusUnauthorized || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
		bodies = append(bodies, w.Body.String())
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("wrong password and unknown user answer differently: %q vs %q", bodies[0], bodies[1])
	}
	if w := b.post(`{"login":"rita","password":"x","remember":true}`); w.Code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", w.Code)
	}
}

func TestLockedAccountRefusesTheRightPasswordOverHTTP(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "sam")
	for range 5 {
		b.post(`{"login":"sam","password":"wrong password"}`)
	}
	w := b.post(`{"login":"sam","password":"` + usertest.Password + `"}`)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "invalid login or password") {
		t.Fatalf("locked account: %d %s", w.Code, w.Body)
	}
}
