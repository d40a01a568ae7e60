package adminusers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/adminusers"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function/functiontest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

type bundle struct {
	env     usertest.Env
	fn      *adminusers.Function
	admin   string // the admin's access token
	adminID string
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	tok, id := env.Admin(t)
	return bundle{env: env, fn: adminusers.New(env.Service, env.Service.Verifier(), logging.Discard()), admin: tok.AccessToken, adminID: id}
}

func (b bundle) call(method, path, token string, body any) *httptest.ResponseRecorder {
	return functiontest.Call(b.fn.Handle, method, path, token, body)
}

func code(t *testing.T, w *httptest.ResponseRecorder) apierr.Code {
	t.Helper()
	var body apierr.Body
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	return body.Error.Code
}

func TestOnlyAdministratorsManageUsers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "ivan")
	tok := b.env.Login(t, "ivan").AccessToken
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/admin/users", nil},
		{"PUT", "/api/v1/admin/users/" + u.ID + "/roles", user.RolesRequest{Roles: []string{"admin"}}},
		{"PUT", "/api/v1/admin/users/" + b.adminID + "/status", user.StatusRequest{Status: "disabled"}},
	} {
		if w := b.call(tc.method, tc.path, tok, tc.body); w.Code != 403 || code(t, w) != apierr.Forbidden {
			t.Errorf("user on %s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
		if w := b.call(tc.method, tc.path, "", tc.body); w.Code != 401 {
			t.Errorf("nobody on %s %s: %d", tc.method, tc.path, w.Code)
		}
	}
	if p, _ := b.env.Service.Profile(context.Background(), u.ID); !slices.Equal(p.Roles, []string{"user"}) {
		t.Fatalf("roles changed by a non-admin: %v", p.Roles)
	}
}

func TestListPagesThroughUsersAndFiltersByPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 5 {
		b.env.Register(t, fmt.Sprintf("page%d", i))
	}
	b.env.Register(t, "other")
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		w := b.call("GET", "/api/v1/admin/users?limit=2&cursor="+cursor, b.admin, nil)
		var page user.UserPage
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &page) != nil || len(page.Users) > 2 {
			t.Fatalf("page %d: %d %s", pages, w.Code, w.Body)
		}
		for _, u := range page.Users {
			seen = append(seen, u.Username)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	want := []string{"admin", "other", "page0", "page1", "page2", "page3", "page4"}
	if !slices.Equal(seen, want) {
		t.Fatalf("paged through %v, want %v", seen, want)
	}
	w := b.call("GET", "/api/v1/admin/users?q=PAGE", b.admin, nil)
	var page user.UserPage
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &page) != nil || len(page.Users) != 5 || page.NextCursor != "" {
		t.Fatalf("q=PAGE: %d %s", w.Code, w.Body)
	}
	if w := b.call("GET", "/api/v1/admin/users?q=other@example", b.admin, nil); !bytes.Contains(w.Body.Bytes(), []byte(`"username":"other"`)) {
		t.Fatalf("email prefix: %s", w.Body)
	}
	if w := b.call("GET", "/api/v1/admin/users?q=page_", b.admin, nil); bytes.Contains(w.Body.Bytes(), []byte(`"page0"`)) {
		t.Fatalf("_ in q matched as a wildcard: %s", w.Body)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "cursor=!!"} {
		if w := b.call("GET", "/api/v1/admin/users?"+q, b.admin, nil); w.Code != 400 {
			t.Errorf("%s: %d %s", q, w.Code, w.Body)
		}
	}
}

func TestRoleChangesAreValidatedAndAdminsCannotDemoteThemselves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "jane")
	path := "/api/v1/admin/users/" + u.ID + "/roles"
	w := b.call("PUT", path, b.admin, user.RolesRequest{Roles: []string{"user", "admin", "user"}})
	var v user.AccountView
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &v) != nil || !slices.Equal(v.Roles, []string{"admin", "user"}) {
		t.Fatalf("promote: %d %s", w.Code, w.Body)
	}
	// The new role reaches the user's next token.
	if p, _ := b.env.Service.Profile(context.Background(), u.ID); !slices.Contains(p.Permissions, "admin:users") {
		t.Fatalf("permissions after promotion: %v", p.Permissions)
	}
	for _, roles := range [][]string{{}, {"root"}, nil} {
		if w := b.call("PUT", path, b.admin, user.RolesRequest{Roles: roles}); w.Code != 400 {
			t.Errorf("roles %v: %d %s", roles, w.Code, w.Body)
		}
	}
	if w := b.call("PUT", "/api/v1/admin/users/"+b.adminID+"/roles", b.admin, user.RolesRequest{Roles: []string{"user"}}); w.Code != 409 || code(t, w) != apierr.Conflict {
		t.Fatalf("self-demotion: %d %s", w.Code, w.Body)
	}
	if w := b.call("PUT", "/api/v1/admin/users/"+b.adminID+"/roles", b.admin, user.RolesRequest{Roles: []string{"admin"}}); w.Code != 200 {
		t.Fatalf("an admin keeping admin: %d %s", w.Code, w.Body)
	}
	// Changed roles end the admin's own earlier tokens too.
	if w := b.call("GET", "/api/v1/admin/users", b.admin, nil); w.Code != 401 {
		t.Fatalf("a token issued before its roles changed: %d, want 401", w.Code)
	}
	b.admin = b.env.Login(t, user.AdminUsername).AccessToken
	for _, id := range []string{"00000000-0000-4000-8000-000000000000", "nope"} {
		if w := b.call("PUT", "/api/v1/admin/users/"+id+"/roles", b.admin, user.RolesRequest{Roles: []string{"user"}}); w.Code != 404 {
			t.Errorf("unknown id %s: %d %s", id, w.Code, w.Body)
		}
	}
}

func TestDisablingAUserRefusesLoginAndRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "kurt")
	tokens := b.env.Login(t, "kurt")
	path := "/api/v1/admin/users/" + u.ID + "/status"
	if w := b.call("PUT", path, b.admin, user.StatusRequest{Status: "disabled"}); w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte(`"status":"disabled"`)) {
		t.Fatalf("disable: %d %s", w.Code, w.Body)
	}
	ctx := context.Background()
	if _, err := b.env.Service.Login(ctx, user.LoginRequest{Login: "kurt", Password: usertest.Password}); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("login of a disabled user: %v", err)
	}
	if _, err := b.env.Service.Refresh(ctx, tokens.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("refresh of a disabled user: %v", err)
	}
	var live int
	if err := b.env.Pool.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL`, u.ID).Scan(&live); err != nil || live != 0 {
		t.Fatalf("%d refresh tokens still live (%v)", live, err)
	}
	if w := b.call("PUT", path, b.admin, user.StatusRequest{Status: "active"}); w.Code != 200 {
		t.Fatalf("enable: %d %s", w.Code, w.Body)
	}
	if _, err := b.env.Service.Refresh(ctx, tokens.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("a refresh token revoked by disabling came back: %v", err)
	}
	b.env.Login(t, "kurt")
	if w := b.call("PUT", path, b.admin, user.StatusRequest{Status: "gone"}); w.Code != 400 {
		t.Fatalf("unknown status: %d %s", w.Code, w.Body)
	}
	if w := b.call("PUT", "/api/v1/admin/users/"+b.adminID+"/status", b.admin, user.StatusRequest{Status: "disabled"}); w.Code != 409 {
		t.Fatalf("self-disable: %d %s", w.Code, w.Body)
	}
}
