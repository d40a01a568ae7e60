package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

const deviceAdminPassword = "admin password for the device e2e"

// devicePlatform is a running platform without device-runtime: the test
// plays the runtime by posting its reports to the broker.
type devicePlatform struct {
	*running
	base string
	// prefix is the platform's database prefix (set by
	// startRuntimePlatform).
	prefix string
}

// startDevicePlatform runs every catalog function except device-runtime on
// an address chosen first, so that the device context can be pointed at the
// user context's quota API on the same address (CLOUDPHONE_USER_URL).
func startDevicePlatform(t *testing.T, extra map[string]string) devicePlatform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t)
	e.extra = map[string]string{"CLOUDPHONE_USER_URL": "http://" + addr}
	for k, v := range extra {
		e.extra[k] = v
	}
	var entries []function.Entry
	for _, en := range catalog.Entries() {
		if en.Spec.Name != "device-runtime" {
			entries = append(entries, en)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := local.Start(ctx, local.Options{
		Config: local.Config{
			Addr: addr, DataDir: e.dataDir, DatabaseURL: mustEnv(t, "DATABASE_URL"), RedisURL: mustEnv(t, "REDIS_URL"),
			TriggersDir: "../../triggers", AdminPassword: deviceAdminPassword,
		},
		Env:       config.FromMap(e.config()),
		Entries:   entries,
		Declared:  catalogSpecs(),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bootstrap: userfunctions.Bootstrap(io.Discard),
	})
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	r := &running{Platform: p}
	t.Cleanup(func() {
		if !r.stopped {
			_ = p.Shutdown(context.Background())
		}
	})
	return devicePlatform{running: r, base: p.URL()}
}

// deviceToken registers username (unless it is admin) and logs it in.
func (p devicePlatform) deviceToken(t *testing.T, username string) (id, token string) {
	t.Helper()
	password := "correct horse battery"
	if username == "admin" {
		password = deviceAdminPassword
	} else {
		id = register(t, p.base, username).ID
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, "POST", p.base+"/api/v1/auth/login", map[string]string{"login": username, "password": password}, &tok); status != 200 {
		t.Fatalf("login %s: %d", username, status)
	}
	return id, tok.AccessToken
}

// fund credits userID with amount through the admin API: a running phone is
// charged, and without money billing stops it.
func (p devicePlatform) fund(t *testing.T, userID string, amount int64) {
	t.Helper()
	_, admin := p.deviceToken(t, "admin")
	if st := call(t, "POST", p.base+"/api/v1/admin/users/"+userID+"/credit", map[string]any{"amount": amount, "reason": "e2e"},
		nil, deviceBearer(admin)...); st != http.StatusCreated {
		t.Fatalf("credit %s: %d", userID, st)
	}
}

// publish posts an event to the broker's ingress.
func (p devicePlatform) publish(t *testing.T, typ, source, subject string, data any) {
	t.Helper()
	e, err := events.New(context.Background(), typ, source, subject, data)
	if err != nil {
		t.Fatal(err)
	}
	if status := p.sendEvent(t, e); status != http.StatusAccepted {
		t.Fatalf("broker ingress refused %s: %d", typ, status)
	}
}

// report plays device-runtime: it posts report typ about id.
func (p devicePlatform) report(t *testing.T, typ, id string, at time.Time) {
	t.Helper()
	p.publish(t, typ, "/cloudphone/device/device-runtime", id, deviceevents.RuntimeReport{
		SchemaVersion: 1, DeviceID: id, ContainerID: "e2e-" + id[:8], At: at})
}

func deviceBearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// awaitState waits until the device is in state want.
func (p devicePlatform) awaitState(t *testing.T, token, id string, want device.State) device.Device {
	t.Helper()
	return p.awaitStateWithin(t, token, id, want, 10*time.Second)
}

// awaitStateWithin is awaitState with its own patience (a recreation waits
// for the reconcile loop and Docker, slow on a loaded machine).
func (p devicePlatform) awaitStateWithin(t *testing.T, token, id string, want device.State, within time.Duration) device.Device {
	t.Helper()
	var d device.Device
	deadline := time.Now().Add(within)
	for {
		d = device.Device{}
		call(t, "GET", p.base+"/api/v1/devices/"+id, nil, &d, deviceBearer(token)...)
		if d.State == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: device %s never became %s (is %s, last error %q)", within, id, want, d.State, d.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p devicePlatform) usage(t *testing.T, token string) user.Usage {
	t.Helper()
	var q user.Quota
	if status := call(t, "GET", p.base+"/api/v1/quotas/me", nil, &q, deviceBearer(token)...); status != 200 {
		t.Fatalf("quota: %d", status)
	}
	return q.Usage
}

func TestDeviceLifecycleThroughThePublicAPIAndTheBroker(t *testing.T) {
	t.Parallel()
	p := startDevicePlatform(t, nil)
	aliceID, alice := p.deviceToken(t, "alice")
	_, bob := p.deviceToken(t, "bob")
	_, admin := p.deviceToken(t, "admin")
	p.fund(t, aliceID, 100000)

	var d device.Device
	if status := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": "pixel", "cpu_cores": 1, "memory_mb": 1024}, &d, deviceBearer(alice)...); status != http.StatusAccepted {
		t.Fatalf("create: %d %+v", status, d)
	}
	if d.State != device.StateCreating || d.ADBPort != 28000 || d.NodeName != "local" || d.UserID != aliceID {
		t.Fatalf("created = %+v", d)
	}
	if u := p.usage(t, alice); u.Devices != 1 || u.RunningDevices != 1 || u.CPUCores != 1 {
		t.Fatalf("usage after create = %+v", u)
	}
	var e map[string]any
	if status := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": "second", "cpu_cores": 1, "memory_mb": 1024}, &e, deviceBearer(alice)...); status != http.StatusForbidden {
		t.Fatalf("second device on the free tier: %d %v", status, e)
	}

	t0 := time.Now()
	p.report(t, deviceevents.EventRuntimeCreated, d.ID, t0)
	p.report(t, deviceevents.EventRuntimeStarted, d.ID, t0.Add(10*time.Millisecond))
	p.awaitState(t, alice, d.ID, device.StateRunning)

	id := d.ID
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/devices/" + id}, {"DELETE", "/api/v1/devices/" + id}, {"POST", "/api/v1/devices/" + id + "/start"},
		{"POST", "/api/v1/devices/" + id + "/stop"}, {"POST", "/api/v1/devices/" + id + "/restart"},
		{"GET", "/api/v1/devices/" + id + "/connection"},
	} {
		if status := call(t, r.method, p.base+r.path, nil, nil, deviceBearer(bob)...); status != http.StatusNotFound {
			t.Errorf("bob: %s %s = %d, want 404", r.method, r.path, status)
		}
	}
	if status := call(t, "GET", p.base+"/api/v1/devices/"+id, nil, nil, deviceBearer(admin)...); status != http.StatusOK {
		t.Fatalf("admin get: %d", status)
	}

	var conn device.Connection
	if status := call(t, "GET", p.base+"/api/v1/devices/"+id+"/connection", nil, &conn, deviceBearer(alice)...); status != 200 || conn.ADB != "127.0.0.1:28000" || conn.Ticket == "" {
		t.Fatalf("connection: %d %+v", status, conn)
	}
	if status := call(t, "POST", p.base+"/api/v1/devices/"+id+"/start", nil, nil, deviceBearer(alice)...); status != http.StatusConflict {
		t.Fatalf("start a running device: %d", status)
	}

	if status := call(t, "POST", p.base+"/api/v1/devices/"+id+"/stop", nil, &d, deviceBearer(alice)...); status != http.StatusAccepted || d.State != device.StateStopping {
		t.Fatalf("stop: %d %+v", status, d)
	}
	p.report(t, deviceevents.EventRuntimeStopped, id, t0.Add(time.Second))
	p.awaitState(t, alice, id, device.StateStopped)
	if u := p.usage(t, alice); u.RunningDevices != 0 || u.Devices != 1 {
		t.Fatalf("usage after stop = %+v", u)
	}

	if status := call(t, "POST", p.base+"/api/v1/devices/"+id+"/start", nil, &d, deviceBearer(alice)...); status != http.StatusAccepted || d.State != device.StateStarting {
		t.Fatalf("start: %d %+v", status, d)
	}
	p.report(t, deviceevents.EventRuntimeStarted, id, t0.Add(2*time.Second))
	p.awaitState(t, alice, id, device.StateRunning)

	// Billing says alice cannot pay: her running device is stopped.
	p.publish(t, billingevents.EventBalanceExhausted, "/cloudphone/billing/e2e", aliceID,
		billingevents.BalanceExhausted{SchemaVersion: 1, UserID: aliceID, Currency: "CNY", At: time.Now()})
	got := p.awaitState(t, alice, id, device.StateStopping)
	if got.StopReason != deviceevents.ReasonInsufficientFunds {
		t.Fatalf("stop reason = %q", got.StopReason)
	}
	p.report(t, deviceevents.EventRuntimeStopped, id, t0.Add(3*time.Second))
	p.awaitState(t, alice, id, device.StateStopped)

	if status := call(t, "DELETE", p.base+"/api/v1/devices/"+id, nil, &d, deviceBearer(alice)...); status != http.StatusAccepted || d.State != device.StateDeleting {
		t.Fatalf("delete: %d %+v", status, d)
	}
	p.report(t, deviceevents.EventRuntimeRemoved, id, t0.Add(4*time.Second))
	p.awaitState(t, alice, id, device.StateDeleted)
	// A late started report changes nothing.
	p.report(t, deviceevents.EventRuntimeStarted, id, t0.Add(5*time.Second))
	if u := p.usage(t, alice); u != (user.Usage{}) {
		t.Fatalf("usage after delete = %+v", u)
	}
	var nodes struct {
		Nodes []device.Node `json:"nodes"`
	}
	if status := call(t, "GET", p.base+"/api/v1/admin/nodes", nil, &nodes, deviceBearer(admin)...); status != 200 || len(nodes.Nodes) != 1 ||
		nodes.Nodes[0].AllocatedCPUCores != 0 || nodes.Nodes[0].Devices != 0 {
		t.Fatalf("nodes after delete: %d %+v", status, nodes)
	}
	if status := call(t, "GET", p.base+"/api/v1/admin/nodes", nil, nil, deviceBearer(alice)...); status != http.StatusForbidden {
		t.Fatalf("alice on admin nodes: %d", status)
	}
	// The freed port and quota serve the next device.
	if status := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": "again", "cpu_cores": 1, "memory_mb": 1024}, &d, deviceBearer(alice)...); status != http.StatusAccepted || d.ADBPort != 28000 {
		t.Fatalf("create after delete: %d %+v", status, d)
	}
	p.awaitState(t, alice, id, device.StateDeleted)
}
