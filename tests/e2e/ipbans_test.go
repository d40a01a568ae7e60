package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Admins manage the deny list over the API; a ban takes effect for the
// client address the edge sees (behind a trusted proxy, from X-Forwarded-For)
// and lifting it restores access.
func TestAdminIPBansBlockAndReleaseClientsBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.extra = map[string]string{"CLOUDPHONE_TRUSTED_PROXIES": "127.0.0.1/32"}
	e.adminPassword = "admin-password-for-tests"
	p := start(t, e, &subscriber{})
	admin := login(t, p.URL(), "admin", "admin-password-for-tests")
	register(t, p.URL(), "judy")
	judy := login(t, p.URL(), "judy", "correct horse battery")
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	if resp, body := send(t, "PUT", p.URL()+"/api/v1/admin/ip-bans/203.0.113.0/24", `{"reason":"abuse"}`, bearer(judy)); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a non-admin added a ban: %d %q", resp.StatusCode, body.Error.Code)
	}
	if resp, body := send(t, "PUT", p.URL()+"/api/v1/admin/ip-bans/not-an-address", `{}`, bearer(admin)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a malformed entry: %d %q, want 400", resp.StatusCode, body.Error.Code)
	}
	if resp, body := send(t, "PUT", p.URL()+"/api/v1/admin/ip-bans/203.0.113.0/24", `{"reason":"abuse","ttl_seconds":3600}`, bearer(admin)); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin ban: %d %q", resp.StatusCode, body.Error.Code)
	}
	var list struct {
		Entries []struct {
			Range  string `json:"range"`
			Reason string `json:"reason"`
		} `json:"entries"`
	}
	if status := call(t, "GET", p.URL()+"/api/v1/admin/ip-bans", nil, &list, "Authorization", "Bearer "+admin); status != http.StatusOK ||
		len(list.Entries) != 1 || list.Entries[0].Range != "203.0.113.0/24" || list.Entries[0].Reason != "abuse" {
		t.Fatalf("list: %d %+v", status, list)
	}

	from := func(ip string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + judy, "X-Forwarded-For": ip}
	}
	eventually(t, 3*time.Second, "the banned range was not refused", func() bool {
		resp, _ := send(t, "GET", p.URL()+"/api/v1/users/me", "", from("203.0.113.9"))
		return resp.StatusCode == http.StatusForbidden
	})
	if resp, _ := send(t, "GET", p.URL()+"/api/v1/users/me", "", from("198.51.100.4")); resp.StatusCode != http.StatusOK {
		t.Fatalf("an address outside the range was refused: %d", resp.StatusCode)
	}

	if resp, _ := send(t, "DELETE", p.URL()+"/api/v1/admin/ip-bans/203.0.113.0/24", "", bearer(admin)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("lift: %d", resp.StatusCode)
	}
	eventually(t, 3*time.Second, "the lifted ban still refused", func() bool {
		resp, _ := send(t, "GET", p.URL()+"/api/v1/users/me", "", from("203.0.113.9"))
		return resp.StatusCode == http.StatusOK
	})
	if resp, _ := send(t, "DELETE", p.URL()+"/api/v1/admin/ip-bans/203.0.113.0/24", "", bearer(admin)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("lifting twice: %d, want 404", resp.StatusCode)
	}
}

// A ban cannot lock everyone out: bans wider than /8 (IPv4) or /32 (IPv6) and
// bans covering the admin's own address are refused with nothing recorded,
// and a platform started with CLOUDPHONE_CLEAR_IP_BANS lifts every ban.
func TestIPBansTooWideOrCoveringTheCallerAreRefusedAndAStartFlagLiftsEveryBan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.extra = map[string]string{"CLOUDPHONE_TRUSTED_PROXIES": "127.0.0.1/32"}
	e.adminPassword = "admin-password-for-tests"
	p := start(t, e, &subscriber{})
	admin := login(t, p.URL(), "admin", "admin-password-for-tests")
	from := func(ip string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + admin}
		if ip != "" {
			h["X-Forwarded-For"] = ip
		}
		return h
	}
	for _, tc := range []struct{ entry, caller, what string }{
		{"0.0.0.0/0", "198.51.100.7", "wider than a /8"},
		{"10.0.0.0/7", "198.51.100.7", "wider than a /8"},
		{"::/0", "198.51.100.7", "wider than a /32"},
		{"2001:db8::/31", "198.51.100.7", "wider than a /32"},
		{"198.51.100.0/24", "198.51.100.7", "covers your own address"},
		{"2001:db8:1::/48", "2001:db8:1::5", "covers your own address"},
		{"127.0.0.0/8", "", "covers your own address"}, // the proxy's own address, no X-Forwarded-For
	} {
		resp, body := send(t, "PUT", p.URL()+"/api/v1/admin/ip-bans/"+tc.entry, `{"reason":"too much"}`, from(tc.caller))
		if resp.StatusCode != http.StatusBadRequest || body.Error.Code != "invalid" || !strings.Contains(body.Error.Message, tc.what) {
			t.Errorf("ban %s from %q: %d %q %q, want 400 invalid saying %q", tc.entry, tc.caller, resp.StatusCode, body.Error.Code, body.Error.Message, tc.what)
		}
	}
	for _, entry := range []string{"10.0.0.0/8", "2001:db8::/32"} {
		if resp, body := send(t, "PUT", p.URL()+"/api/v1/admin/ip-bans/"+entry, `{"reason":"abuse"}`, from("198.51.100.7")); resp.StatusCode != http.StatusOK {
			t.Fatalf("ban %s: %d %q", entry, resp.StatusCode, body.Error.Code)
		}
	}
	var list struct {
		Entries []struct {
			Range string `json:"range"`
		} `json:"entries"`
	}
	if status := call(t, "GET", p.URL()+"/api/v1/admin/ip-bans", nil, &list, "Authorization", "Bearer "+admin); status != http.StatusOK ||
		len(list.Entries) != 2 {
		t.Fatalf("list: %d %+v, want only the two allowed bans", status, list)
	}

	p.stop(t)
	e.extra["CLOUDPHONE_CLEAR_IP_BANS"] = "true"
	p = start(t, e, &subscriber{})
	admin = login(t, p.URL(), "admin", "admin-password-for-tests")
	if status := call(t, "GET", p.URL()+"/api/v1/admin/ip-bans", nil, &list, "Authorization", "Bearer "+admin); status != http.StatusOK ||
		len(list.Entries) != 0 {
		t.Fatalf("after a start with CLOUDPHONE_CLEAR_IP_BANS: %d %+v, want no ban", status, list)
	}
}
