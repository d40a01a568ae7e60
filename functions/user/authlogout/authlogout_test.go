package authlogout_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user/authlogout"
	"github.com/cloudphone/cloudphone/functions/user/userprofile"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

type bundle struct {
	env     usertest.Env
	fn      *authlogout.Function
	profile *userprofile.Function
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	v := env.Service.Verifier()
	return bundle{env: env, fn: authlogout.New(env.Service, v, logging.Discard()), profile: userprofile.New(env.Service, v, logging.Discard())}
}

func (b bundle) logout(access, body string) *httptest.ResponseRecorder {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(http.MethodPost, "/api/v1/auth/logout", nil)
	} else {
		r = httptest.NewRequest(http.MethodPost, "/api/v1/auth/logout", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if access != "" {
		r.Header.Set("Authorization", "Bearer "+access)
	}
	w := httptest.NewRecorder()
	b.fn.Handle(w, r)
	return w
}

func (b bundle) me(access string) int {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/users/me", nil)
	r.Header.Set("Authorization", "Bearer "+access)
	w := httptest.NewRecorder()
	b.profile.Handle(w, r)
	return w.Code
}

func TestLogoutRevokesTheAccessTokenAndItsRefreshFamily(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "uma")
	tok := b.env.Login(t, "uma")
	if code := b.me(tok.AccessToken); code != http.StatusOK {
		t.Fatalf("profile before logout: %d", code)
	}
	w := b.logout(tok.AccessToken, `{"refresh_token":"`+tok.RefreshToken+`"}`)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	if code := b.me(tok.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("profile after logout: %d, want 401", code)
	}
	if _, err := b.env.Service.Refresh(t.Context(), tok.RefreshToken); err == nil {
		t.Fatal("refresh token still works after logout")
	}
	if w := b.logout(tok.AccessToken, ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("logout with a revoked token: %d, want 401", w.Code)
	}
}

func TestLogoutWithoutBodyRevokesEveryFamily(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "vera")
	one := b.env.Login(t, "vera")
	two := b.env.Login(t, "vera")
	if w := b.logout(one.AccessToken, ""); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	for _, tok := range []string{one.RefreshToken, two.RefreshToken} {
		if _, err := b.env.Service.Refresh(t.Context(), tok); err == nil {
			t.Fatal("a refresh family survived logout without a body")
		}
	}
}

func TestLogoutNeedsABearerToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, access := range []string{"", "not.a.token"} {
		if w := b.logout(access, ""); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"unauthorized"`) {
			t.Errorf("access %q: %d %s", access, w.Code, w.Body)
		}
	}
}
