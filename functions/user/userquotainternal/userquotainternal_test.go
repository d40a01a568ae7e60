package userquotainternal_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userprofile"
	"github.com/cloudphone/cloudphone/functions/user/userquotainternal"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function/functiontest"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

type bundle struct {
	env  usertest.Env
	fn   *userquotainternal.Function
	priv ed25519.PrivateKey
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := servicetoken.NewVerifier(pub, servicetoken.VerifierOptions{})
	return bundle{env: env, fn: userquotainternal.New(env.Service, v, logging.Discard()), priv: priv}
}

// token mints a service token of caller for the user context.
func (b bundle) token(t *testing.T, caller string) string {
	t.Helper()
	var p [6]byte
	_, _ = rand.Read(p[:])
	m := servicetoken.NewMinter(caller, b.priv, servicetoken.MinterOptions{
		Redis: b.env.Redis, Log: logging.Discard(), KeyPrefix: "test:svctoken:" + hex.EncodeToString(p[:]) + ":",
	})
	tok, err := m.Token(context.Background(), servicetoken.ContextUser)
	if err != nil {
		t.Fatal(err)
	}
	return tok
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

func TestEntryRoutesAreTheFunctionsRoutes(t *testing.T) {
	t.Parallel()
	s := userquotainternal.Entry.Spec
	if s.Name != userquotainternal.Name || !slices.Equal(s.Routes, userquotainternal.Routes) || s.Public() {
		t.Fatalf("catalog entry %+v, want internal routes %v", s, userquotainternal.Routes)
	}
	for _, r := range userquotainternal.Routes {
		if len(userquotainternal.Allowed[r]) == 0 {
			t.Errorf("%s has no allowed caller", r)
		}
	}
}

func TestGuardAdmitsOnlyServiceTokensOfAllowedCallers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "gina")
	userToken := b.env.Login(t, "gina").AccessToken
	device, billing := b.token(t, "device"), b.token(t, "billing")
	reserve := "/internal/v1/quotas/" + u.ID + "/reserve"
	get := "/internal/v1/quotas/" + u.ID
	body := user.ReserveRequest{DeviceID: "dev-1", CPUCores: 1, MemoryMB: 512}
	cases := []struct {
		name, method, path, token string
		status                    int
	}{
		{"no token", "POST", reserve, "", 401},
		{"user access token", "POST", reserve, userToken, 401},
		{"billing may not reserve", "POST", reserve, billing, 403},
		{"device reserves", "POST", reserve, device, 200},
		{"billing may read", "GET", get, billing, 200},
		{"device may read", "GET", get, device, 200},
		{"user token may not read", "GET", get, userToken, 401},
	}
	for _, tc := range cases {
		var req any
		if tc.method == "POST" {
			req = body
		}
		w := b.call(tc.method, tc.path, tc.token, req)
		if w.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
			continue
		}
		if tc.status != 200 {
			if c := code(t, w); (tc.status == 401 && c != apierr.Unauthorized) || (tc.status == 403 && c != apierr.Forbidden) {
				t.Errorf("%s: code %s", tc.name, c)
			}
		}
	}

	// And the other way round: a service token on a public route is refused.
	pf := userprofile.New(b.env.Service, b.env.Service.Verifier(), logging.Discard())
	r := httptest.NewRequest("GET", "/api/v1/users/me", nil)
	r.Header.Set("Authorization", "Bearer "+device)
	w := httptest.NewRecorder()
	pf.Handle(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("service token on /api/v1/users/me: %d %s, want 401", w.Code, w.Body)
	}
}

func TestQuotaRoutesAnswerWithTheServicesOutcomes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "hugo")
	device := b.token(t, "device")
	base := "/internal/v1/quotas/" + u.ID
	ok := user.ReserveRequest{DeviceID: "dev-1", CPUCores: 2, MemoryMB: 2048, StorageGB: 8}

	w := b.call("POST", base+"/reserve", device, ok)
	var res user.Reservation
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &res) != nil || res.DeviceID != "dev-1" || res.UserID != u.ID || res.CPUCores != 2 {
		t.Fatalf("reserve: %d %s", w.Code, w.Body)
	}
	if again := b.call("POST", base+"/reserve", device, ok); again.Code != 200 || again.Body.String() != w.Body.String() {
		t.Fatalf("repeated reserve: %d %s, want the same answer %s", again.Code, again.Body, w.Body)
	}
	other := ok
	other.CPUCores = 1
	if w := b.call("POST", base+"/reserve", device, other); w.Code != 409 || code(t, w) != apierr.Conflict {
		t.Fatalf("other amounts: %d %s", w.Code, w.Body)
	}
	w = b.call("POST", base+"/reserve", device, user.ReserveRequest{DeviceID: "dev-2", CPUCores: 1, MemoryMB: 512})
	if w.Code != 403 || code(t, w) != apierr.QuotaExceeded || !bytes.Contains(w.Body.Bytes(), []byte("max_devices")) {
		t.Fatalf("second device on the free tier: %d %s", w.Code, w.Body)
	}
	if w := b.call("POST", base+"/reserve", device, map[string]any{"device_id": "x", "cpu_cores": 1, "memory_mb": 1, "gpu": 1}); w.Code != 400 {
		t.Fatalf("unknown field: %d %s", w.Code, w.Body)
	}
	for _, step := range []struct {
		route   string
		running bool
	}{{"/start", true}, {"/start", true}, {"/stop", false}, {"/stop", false}} {
		w := b.call("POST", base+step.route, device, user.DeviceRequest{DeviceID: "dev-1"})
		var st user.DeviceState
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &st) != nil || st.Running != step.running || !st.Reserved {
			t.Fatalf("%s: %d %s", step.route, w.Code, w.Body)
		}
	}
	if w := b.call("POST", base+"/start", device, user.DeviceRequest{DeviceID: "nope"}); w.Code != 404 {
		t.Fatalf("start of an unreserved device: %d %s", w.Code, w.Body)
	}
	for range 2 {
		if w := b.call("POST", base+"/release", device, user.DeviceRequest{DeviceID: "dev-1"}); w.Code != 200 {
			t.Fatalf("release: %d %s", w.Code, w.Body)
		}
	}
	w = b.call("GET", base, device, nil)
	var q user.Quota
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &q) != nil || q.Limits != user.FreeTier || q.Usage != (user.Usage{}) {
		t.Fatalf("quota: %d %s", w.Code, w.Body)
	}
	if w := b.call("GET", "/internal/v1/quotas/00000000-0000-4000-8000-000000000000", device, nil); w.Code != 404 {
		t.Fatalf("unknown user: %d %s", w.Code, w.Body)
	}
}
