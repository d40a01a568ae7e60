package adminipbans_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user/adminipbans"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/ipban"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// adminAddr is the address every request of these tests comes from.
var adminAddr = netip.MustParseAddr("198.51.100.7")

type bundle struct {
	env  usertest.Env
	fn   *adminipbans.Function
	bans *ipban.Denylist
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	bans, err := ipban.New(env.Redis, ipban.Options{Prefix: "test:ipban:" + events.NewID() + ":", Log: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	clientIP := func(*http.Request) netip.Addr { return adminAddr }
	return bundle{env: env, bans: bans, fn: adminipbans.New(bans, clientIP, env.Service.Verifier(), logging.Discard())}
}

func (b bundle) call(method, path, token, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader([]byte(body)))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	b.fn.Handle(w, r)
	return w
}

func TestAnAdminBansARangeListsItAndLiftsIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tok, _ := b.env.Admin(t)
	admin := tok.AccessToken

	if w := b.call("PUT", "/api/v1/admin/ip-bans/203.0.113.0/24", admin, `{"reason":"abuse","ttl_seconds":3600}`); w.Code != http.StatusOK {
		t.Fatalf("ban: %d %s", w.Code, w.Body)
	}
	if w := b.call("PUT", "/api/v1/admin/ip-bans/198.51.100.0/24", admin, `{"reason":"oops"}`); w.Code != http.StatusBadRequest {
		t.Fatalf("a ban covering the admin's own address: %d %s, want 400", w.Code, w.Body)
	}
	w := b.call("GET", "/api/v1/admin/ip-bans", admin, "")
	var list adminipbans.List
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list.Entries) != 1 ||
		list.Entries[0].Range.String() != "203.0.113.0/24" || list.Entries[0].Reason != "abuse" {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store", got)
	}
	if w := b.call("DELETE", "/api/v1/admin/ip-bans/203.0.113.0/24", admin, ""); w.Code != http.StatusNoContent {
		t.Fatalf("lift: %d %s", w.Code, w.Body)
	}
	if w := b.call("DELETE", "/api/v1/admin/ip-bans/203.0.113.0/24", admin, ""); w.Code != http.StatusNotFound {
		t.Fatalf("lift again: %d %s, want 404", w.Code, w.Body)
	}
}

func TestOnlyAdminsManageBans(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Register(t, "judy")
	judy := b.env.Login(t, "judy").AccessToken
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/admin/ip-bans", ""},
		{"PUT", "/api/v1/admin/ip-bans/203.0.113.0/24", `{"reason":"abuse"}`},
		{"DELETE", "/api/v1/admin/ip-bans/203.0.113.0/24", ""},
	} {
		if w := b.call(tc.method, tc.path, judy, tc.body); w.Code != http.StatusForbidden {
			t.Errorf("user on %s %s: %d, want 403", tc.method, tc.path, w.Code)
		}
		if w := b.call(tc.method, tc.path, "", tc.body); w.Code != http.StatusUnauthorized {
			t.Errorf("nobody on %s %s: %d, want 401", tc.method, tc.path, w.Code)
		}
	}
	if list, err := b.bans.List(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("bans %v, %v; want none", list, err)
	}
}
