package devices_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/devices"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

type bundle struct {
	env devicetest.Env
	fn  *devices.Function
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := devicetest.New(t)
	return bundle{env: env, fn: devices.New(env.Service, env.Users.Service.Verifier(), logging.Discard())}
}

// do sends one request as token and decodes the answer into out.
func (b bundle) do(t *testing.T, method, path, token, body string, out any) int {
	t.Helper()
	var rd *strings.Reader
	if body == "" {
		rd = strings.NewReader("")
	} else {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	b.fn.Handle(rec, req)
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, rec.Body.String(), err)
		}
	}
	return rec.Code
}

func (b bundle) create(t *testing.T, a devicetest.Account) device.Device {
	t.Helper()
	var d device.Device
	if code := b.do(t, "POST", "/api/v1/devices", a.Token, `{"name":"phone","cpu_cores":1,"memory_mb":1024}`, &d); code != http.StatusAccepted {
		t.Fatalf("create: %d", code)
	}
	return d
}

func (b bundle) run(t *testing.T, id string) {
	t.Helper()
	now := time.Now()
	b.env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, id, now))
	b.env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, id, now.Add(time.Millisecond)))
}

func routes(id string) []struct{ method, path string } {
	return []struct{ method, path string }{
		{"GET", "/api/v1/devices/" + id},
		{"DELETE", "/api/v1/devices/" + id},
		{"POST", "/api/v1/devices/" + id + "/start"},
		{"POST", "/api/v1/devices/" + id + "/stop"},
		{"POST", "/api/v1/devices/" + id + "/restart"},
		{"GET", "/api/v1/devices/" + id + "/connection"},
	}
}

func TestAnotherUsersDeviceIsNotFoundOnEveryRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice, mallory := b.env.User(t, "alice"), b.env.User(t, "mallory")
	d := b.create(t, alice)
	b.run(t, d.ID)
	for _, r := range routes(d.ID) {
		var e apierr.Body
		if code := b.do(t, r.method, r.path, mallory.Token, "", &e); code != http.StatusNotFound || e.Error.Code != apierr.NotFound {
			t.Errorf("%s %s as another user: %d %+v, want 404 not_found", r.method, r.path, code, e)
		}
	}
	var list devices.List
	if code := b.do(t, "GET", "/api/v1/devices", mallory.Token, "", &list); code != http.StatusOK || len(list.Devices) != 0 {
		t.Fatalf("another user's list: %d %+v", code, list)
	}
	var got device.Device
	if code := b.do(t, "GET", "/api/v1/devices/"+d.ID, alice.Token, "", &got); code != http.StatusOK || got.State != device.StateRunning {
		t.Fatalf("owner's get: %d %+v", code, got)
	}
	// Nothing the other user tried changed the device.
	if c := b.env.Outbox(t, deviceevents.EventStopRequested, d.ID); len(c) != 0 {
		t.Fatalf("another user's stop reached the runtime: %v", c)
	}
	// An admin may read any device and list every user's.
	admin, err := b.env.Service.Get(context.Background(), devicetest.Admin(), d.ID)
	if err != nil || admin.ID != d.ID {
		t.Fatalf("admin get: %+v %v", admin, err)
	}
	all, err := b.env.Service.List(context.Background(), devicetest.Admin())
	if err != nil || len(all) != 1 {
		t.Fatalf("admin list: %d %v", len(all), err)
	}
	// Unknown and malformed ids are 404 too.
	for _, id := range []string{"00000000-0000-4000-8000-000000000000", "not-a-uuid"} {
		if code := b.do(t, "GET", "/api/v1/devices/"+id, alice.Token, "", nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d", id, code)
		}
	}
}

func TestRoutesNeedAValidToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := append(routes("00000000-0000-4000-8000-000000000000"), struct{ method, path string }{"GET", "/api/v1/devices"},
		struct{ method, path string }{"POST", "/api/v1/devices"})
	for _, r := range all {
		if code := b.do(t, r.method, r.path, "", "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d", r.method, r.path, code)
		}
	}
}

func TestStateBreakingRequestsAre409AndFittingOnes202(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.env.User(t, "alice")
	d := b.create(t, a)
	base := "/api/v1/devices/" + d.ID
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", base + "/stop", http.StatusConflict},      // creating
		{"POST", base + "/restart", http.StatusConflict},   // creating
		{"GET", base + "/connection", http.StatusConflict}, // creating
		{"POST", base + "/start", http.StatusConflict},     // creating
	} {
		var e apierr.Body
		if code := b.do(t, c.method, c.path, a.Token, "", &e); code != c.want || e.Error.Code != apierr.Conflict {
			t.Errorf("%s %s: %d %+v, want %d", c.method, c.path, code, e, c.want)
		}
	}
	b.run(t, d.ID)
	var conn device.Connection
	if code := b.do(t, "GET", base+"/connection", a.Token, "", &conn); code != http.StatusOK || conn.Ticket == "" ||
		!strings.HasPrefix(conn.URL, "ws://") || !strings.Contains(conn.URL, "/api/v1/devices/"+d.ID+"/adb?ticket=") {
		t.Fatalf("connection: %d %+v", code, conn)
	}
	var got device.Device
	if code := b.do(t, "POST", base+"/restart", a.Token, "", &got); code != http.StatusAccepted || got.State != device.StateRestarting {
		t.Fatalf("restart: %d %+v", code, got)
	}
	if code := b.do(t, "POST", base+"/stop", a.Token, "", nil); code != http.StatusConflict {
		t.Fatalf("stop while restarting: %d", code)
	}
	if code := b.do(t, "DELETE", base, a.Token, "", &got); code != http.StatusAccepted || got.State != device.StateDeleting {
		t.Fatalf("delete: %d %+v", code, got)
	}
	if code := b.do(t, "DELETE", base, a.Token, "", &got); code != http.StatusAccepted || got.State != device.StateDeleting {
		t.Fatalf("delete again while deleting: %d %+v", code, got)
	}
	if c := b.env.Outbox(t, deviceevents.EventDeleteRequested, d.ID); len(c) != 1 {
		t.Fatalf("a repeated delete sent %d commands", len(c))
	}
}

func TestCreateAnswers403AtTheQuotaAnd400ForBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.env.User(t, "alice")
	b.create(t, a)
	var e apierr.Body
	if code := b.do(t, "POST", "/api/v1/devices", a.Token, `{"name":"two","cpu_cores":1,"memory_mb":1024}`, &e); code != http.StatusForbidden || e.Error.Code != apierr.QuotaExceeded {
		t.Fatalf("second device on the free tier: %d %+v", code, e)
	}
	if code := b.do(t, "POST", "/api/v1/devices", a.Token, `{"name":"x","cpu_cores":1,"memory_mb":1024,"gpu":true}`, &e); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %+v", code, e)
	}
	if code := b.do(t, "POST", "/api/v1/devices", a.Token, `{"name":"x","cpu_cores":3,"memory_mb":1024}`, &e); code != http.StatusForbidden || e.Error.Code != apierr.QuotaExceeded {
		t.Fatalf("over the per-device cap: %d %+v", code, e)
	}
}

// The app routes of a device: another user's device is 404 on each, bad
// bodies are 400, a phone that is not running is 409, an uninstall of what
// the phone does not have is 404, and without a token 401. (Installs that
// reach the app context and the phone are proved end to end.)
func TestAppRoutesCheckOwnerBodyAndState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice, mallory := b.env.User(t, "alice"), b.env.User(t, "mallory")
	d := b.create(t, alice)
	b.run(t, d.ID)
	apps := "/api/v1/devices/" + d.ID + "/apps"
	install := `{"app_id":"00000000-0000-4000-8000-0000000000a1"}`
	for _, r := range []struct{ method, path, body string }{
		{"GET", apps, ""}, {"POST", apps, install}, {"DELETE", apps + "/org.example.app", ""},
	} {
		var e apierr.Body
		if code := b.do(t, r.method, r.path, mallory.Token, r.body, &e); code != http.StatusNotFound || e.Error.Code != apierr.NotFound {
			t.Errorf("%s %s as another user: %d %+v, want 404", r.method, r.path, code, e)
		}
		if code := b.do(t, r.method, r.path, "", r.body, nil); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d", r.method, r.path, code)
		}
	}
	for body, want := range map[string]int{
		`{"app_id":"not-an-id"}`: http.StatusBadRequest,
		`{"app_id":"00000000-0000-4000-8000-0000000000a1","force":true}`: http.StatusBadRequest,
		`[]`: http.StatusBadRequest,
	} {
		if code := b.do(t, "POST", apps, alice.Token, body, nil); code != want {
			t.Errorf("install with %s: %d, want %d", body, code, want)
		}
	}
	if code := b.do(t, "DELETE", apps+"/org.example.notthere", alice.Token, "", nil); code != http.StatusNotFound {
		t.Errorf("uninstall of a package the phone does not have: %d", code)
	}
	var l device.InstallationList
	if code := b.do(t, "GET", apps, alice.Token, "", &l); code != http.StatusOK || l.Apps == nil || len(l.Apps) != 0 {
		t.Fatalf("list: %d %+v", code, l)
	}
	if code := b.do(t, "POST", "/api/v1/devices/"+d.ID+"/stop", alice.Token, "", nil); code != http.StatusAccepted {
		t.Fatalf("stop: %d", code)
	}
	var e apierr.Body
	if code := b.do(t, "POST", apps, alice.Token, install, &e); code != http.StatusConflict || e.Error.Code != apierr.Conflict {
		t.Fatalf("install on a stopping phone: %d %+v, want 409", code, e)
	}
	if c := b.env.Outbox(t, deviceevents.EventAppInstallRequested, d.ID); len(c) != 0 {
		t.Fatalf("a refused install reached the runtime: %v", c)
	}
}
