package authrefresh_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/authrefresh"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

type bundle struct {
	env usertest.Env
	fn  *authrefresh.Function
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	return bundle{env: env, fn: authrefresh.New(env.Service, logging.Discard())}
}

func (b bundle) refresh(t *testing.T, token string) (int, user.Tokens) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/auth/refresh", strings.NewReader(`{"refresh_token":"`+token+`"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	b.fn.Handle(w, r)
	var tok user.Tokens
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil {
			t.Fatal(err)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control = %q", w.Header().Get("Cache-Control"))
		}
	}
	return w.Code, tok
}

func TestRefreshRotatesAndTheOldTokenDies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "tina")
	first := b.env.Login(t, "tina")
	code, second := b.refresh(t, first.RefreshToken)
	if code != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.TokenType != "Bearer" {
		t.Fatalf("refresh: %d %+v", code, second)
	}
	code, third := b.refresh(t, second.RefreshToken)
	if code != http.StatusOK {
		t.Fatalf("second refresh: %d", code)
	}
	if code, _ := b.refresh(t, first.RefreshToken); code != http.StatusUnauthorized {
		t.Fatalf("reusing the first token: %d, want 401", code)
	}
	// The reuse revoked the family: the newest token fails too.
	if code, _ := b.refresh(t, third.RefreshToken); code != http.StatusUnauthorized {
		t.Fatalf("newest token after reuse: %d, want 401", code)
	}
}

func TestRefreshRefusesJunk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tok := range []string{"x", strings.Repeat("A", 43), strings.Repeat("A", 1000)} {
		if code, _ := b.refresh(t, tok); code != http.StatusUnauthorized {
			t.Errorf("token %.10q...: %d, want 401", tok, code)
		}
	}
	if code, _ := b.refresh(t, ""); code != http.StatusBadRequest {
		t.Errorf("empty token: %d, want 400", code)
	}
}
