package servicetoken_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// internalUserRoutes is the user context's internal surface as the quota
// service will mount it.
func internalUserRoutes(b bundle) http.Handler {
	mux := http.NewServeMux()
	echo := func(w http.ResponseWriter, r *http.Request) {
		caller, ok := servicetoken.CallerFrom(r.Context())
		if !ok {
			http.Error(w, "no caller in context", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, caller)
	}
	mux.HandleFunc("POST /internal/v1/quotas/{user_id}/reserve", echo)
	mux.HandleFunc("GET /internal/v1/quotas/{user_id}", echo)
	mux.HandleFunc("GET /internal/v1/users/{id}", echo)
	allow := servicetoken.Routes(map[string][]string{
		"POST /internal/v1/quotas/{user_id}/reserve": {"device"},
		"GET /internal/v1/quotas/{user_id}":          {"device", "billing"},
	})
	return servicetoken.Guard(b.verifier(), "user", allow, b.log)(mux)
}

func TestGuardAdmitsOnlyAllowedCallersWithServiceTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := internalUserRoutes(b)
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	userToken, _, err := auth.NewIssuer(userKey, 15*time.Minute).Issue(auth.Principal{UserID: "u1", Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	device := b.token(t, "device", "user")
	billing := b.token(t, "billing", "user")

	cases := []struct {
		name, method, path, auth string
		status                   int
		caller                   string
	}{
		{"allowed caller", "POST", "/internal/v1/quotas/u1/reserve", "Bearer " + device, 200, "device"},
		{"second allowed caller on a shared route", "GET", "/internal/v1/quotas/u1", "Bearer " + billing, 200, "billing"},
		{"caller not allowed on the route", "POST", "/internal/v1/quotas/u1/reserve", "Bearer " + billing, 403, ""},
		{"route in no rule", "GET", "/internal/v1/users/u1", "Bearer " + device, 403, ""},
		{"user access token", "POST", "/internal/v1/quotas/u1/reserve", "Bearer " + userToken, 401, ""},
		{"no token", "POST", "/internal/v1/quotas/u1/reserve", "", 401, ""},
		{"not a bearer scheme", "POST", "/internal/v1/quotas/u1/reserve", "Basic " + device, 401, ""},
		{"token for another audience", "POST", "/internal/v1/quotas/u1/reserve", "Bearer " + b.token(t, "device", "billing"), 401, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 {
				if w.Body.String() != tc.caller {
					t.Fatalf("CallerFrom = %q, want %q", w.Body, tc.caller)
				}
				return
			}
			var body apierr.Body
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q: %v", w.Body, err)
			}
			want := apierr.Unauthorized
			if tc.status == 403 {
				want = apierr.Forbidden
			}
			if body.Error.Code != want {
				t.Fatalf("error code = %q, want %q", body.Error.Code, want)
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without a WWW-Authenticate challenge")
			}
		})
	}
}

func TestRoutesMatchesLikeServeMux(t *testing.T) {
	t.Parallel()
	allow := servicetoken.Routes(map[string][]string{
		"/internal/v1/quotas/":                   {"billing"},
		"POST /internal/v1/quotas/{id}/reserve":  {"device"},
		"GET /internal/v1/devices/{id}/{$}":      {"scheduler"},
		"DELETE /internal/v1/devices/{id}/ports": {"device-runtime"},
	})
	cases := []struct {
		method, path, caller string
		want                 bool
	}{
		{"POST", "/internal/v1/quotas/u1/reserve", "device", true},
		{"POST", "/internal/v1/quotas/u1/reserve", "billing", false}, // the specific rule wins
		{"GET", "/internal/v1/quotas/u1", "billing", true},           // prefix rule
		{"GET", "/internal/v1/quotas/u1", "device", false},
		{"GET", "/internal/v1/devices/d1/", "scheduler", true},
		{"POST", "/internal/v1/devices/d1/", "scheduler", false}, // method
		{"DELETE", "/internal/v1/devices/d1/ports", "device-runtime", true},
		{"GET", "/internal/v1/other", "billing", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if got := allow(r, tc.caller); got != tc.want {
			t.Errorf("%s %s as %s: allowed = %v, want %v", tc.method, tc.path, tc.caller, got, tc.want)
		}
	}
}

func TestRejectServiceTokensRefusesServiceTokenOnPublicRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	userToken, _, err := auth.NewIssuer(userKey, 15*time.Minute).Issue(auth.Principal{UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	h := servicetoken.RejectServiceTokens(b.log)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	cases := []struct {
		name, auth string
		status     int
	}{
		{"service token", "Bearer " + b.token(t, "device", "user"), 401},
		{"user token passes on to user auth", "Bearer " + userToken, 204},
		{"no token passes on", "", 204},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/api/v1/users/me", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("%s: status = %d, want %d", tc.name, w.Code, tc.status)
		}
	}
}
