package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestRouteAdmitsByAccessAndAnswersInOnePlace(t *testing.T) {
	t.Parallel()
	admin := &auth.Principal{UserID: "u1", Roles: []string{auth.RoleAdmin}, Permissions: []string{"nodes:write"}}
	member := &auth.Principal{UserID: "u2", Roles: []string{"user"}}
	cases := []struct {
		name      string
		access    auth.Access
		caller    *auth.Principal
		status    int
		code      string
		noStore   bool
		handlerOK bool
	}{
		{"public route without a token", auth.Access{Public: true}, nil, http.StatusCreated, "", false, true},
		{"signed-in route without a principal", auth.Access{}, nil, http.StatusUnauthorized, "unauthorized", true, false},
		{"signed-in route", auth.Access{}, member, http.StatusCreated, "", true, true},
		{"admin route, caller without the role", auth.Access{Role: auth.RoleAdmin}, member, http.StatusForbidden, "forbidden", true, false},
		{"admin route, caller without the permission", auth.Access{Role: auth.RoleAdmin, Permission: "users:write"}, admin, http.StatusForbidden, "forbidden", true, false},
		{"admin route, admin with the permission", auth.Access{Role: auth.RoleAdmin, Permission: "nodes:write"}, admin, http.StatusCreated, "", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			called := false
			h := auth.Route(c.access, logging.Discard(), func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
				called = true
				return http.StatusCreated, map[string]string{"user": p.UserID}, nil
			})
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			if c.caller != nil {
				r = r.WithContext(auth.WithPrincipal(r.Context(), *c.caller))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.status || called != c.handlerOK {
				t.Fatalf("status %d, handler called %v; want %d, %v", w.Code, called, c.status, c.handlerOK)
			}
			if got := w.Header().Get("Cache-Control") == "no-store"; got != c.noStore {
				t.Errorf("Cache-Control %q, want no-store: %v", w.Header().Get("Cache-Control"), c.noStore)
			}
			if c.code != "" {
				var body struct {
					Error struct{ Code string } `json:"error"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != c.code {
					t.Errorf("body %q, want error code %s", w.Body, c.code)
				}
			}
		})
	}
}
