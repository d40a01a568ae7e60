package userprofile_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userprofile"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/logging"
)

type bundle struct {
	env usertest.Env
	fn  *userprofile.Function
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	return bundle{env: env, fn: userprofile.New(env.Service, env.Service.Verifier(), logging.Discard())}
}

func (b bundle) get(path, access string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if access != "" {
		r.Header.Set("Authorization", "Bearer "+access)
	}
	w := httptest.NewRecorder()
	b.fn.Handle(w, r)
	return w
}

func TestMeShowsTheCallersProfile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "wade")
	tok := b.env.Login(t, "wade")
	w := b.get("/api/v1/users/me", tok.AccessToken)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got user.Profile
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID || got.Username != "wade" || got.Email != "wade@example.com" || got.Status != "active" ||
		!slices.Equal(got.Roles, []string{"user"}) || !slices.Contains(got.Permissions, "device:create") || got.CreatedAt.IsZero() {
		t.Fatalf("profile = %s", w.Body)
	}
	for _, k := range []string{`"id"`, `"username"`, `"email"`, `"roles"`, `"permissions"`, `"status"`, `"created_at"`} {
		if !strings.Contains(w.Body.String(), k) {
			t.Errorf("field %s missing in %s", k, w.Body)
		}
	}
}

func TestQuotaMeShowsLimitsAndUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "xena")
	tok := b.env.Login(t, "xena")
	w := b.get("/api/v1/quotas/me", tok.AccessToken)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got user.Quota
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Limits != user.FreeTier || got.Usage != (user.Usage{}) {
		t.Fatalf("quota = %s", w.Body)
	}
}

func TestMeRequiresAValidToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "yuri")
	// A token signed with another key claims admin for this very user.
	otherPriv, _, _ := auth.GenerateKeyStrings()
	priv, _ := auth.ParsePrivateKey(otherPriv)
	forged, _, _ := auth.NewIssuer(priv, time.Minute).Issue(auth.Principal{UserID: u.ID, Username: "yuri", Roles: []string{"admin"}})
	for name, access := range map[string]string{"none": "", "garbage": "abc", "other key": forged} {
		for _, path := range []string{"/api/v1/users/me", "/api/v1/quotas/me"} {
			if w := b.get(path, access); w.Code != http.StatusUnauthorized {
				t.Errorf("%s %s: %d %s", name, path, w.Code, w.Body)
			}
		}
	}
	if w := b.get("/api/v1/users/other", ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown path: %d", w.Code)
	}
}
