package deviceadbgateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceadbgateway"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

var bg = context.Background()

// setup is a device context whose port pool is the one port of a real TCP
// echo server standing in for a phone's ADB endpoint, and the gateway in
// front of it on an httptest server.
type setup struct {
	env    devicetest.Env
	fn     *deviceadbgateway.Function
	srv    *httptest.Server
	alice  devicetest.Account
	bob    devicetest.Account
	prefix string
}

func newSetup(t *testing.T, maxSessions int) setup {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	env := devicetest.New(t, devicetest.Ports(port, port))
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	fn, err := deviceadbgateway.New(deviceadbgateway.Options{
		Devices: env.Service, Redis: env.Users.Redis, Verifier: env.Users.Service.Verifier(), Log: logging.Discard(),
		Config: deviceadbgateway.Config{MaxSessionsPerUser: maxSessions, WatchInterval: 50 * time.Millisecond,
			DialTimeout: 2 * time.Second, RedisPrefix: prefix},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := fn.Start(bg, nil); err != nil {
		t.Fatal(err)
	}
	// Server timeouts as short as they go: a session must outlive them.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(fn.Handle))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = time.Second, time.Second
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		_ = fn.Stop(bg)
	})
	return setup{env: env, fn: fn, srv: srv, alice: env.User(t, "alice"), bob: env.User(t, "bob"), prefix: prefix}
}

func (s setup) create(t *testing.T, a devicetest.Account) device.Device {
	t.Helper()
	d, err := s.env.Service.Create(bg, a.Principal, device.CreateRequest{Name: "phone", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return d
}

func (s setup) run(t *testing.T, d device.Device) {
	t.Helper()
	now := time.Now()
	s.env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, d.ID, now))
	s.env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, now.Add(time.Millisecond)))
}

func (s setup) ticket(t *testing.T, a devicetest.Account, id string) string {
	t.Helper()
	c, err := s.env.Service.Connect(bg, a.Principal, id, "ws://unused")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c.Ticket
}

func (s setup) url(id, ticket string) string {
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/api/v1/devices/" + id + "/adb?ticket=" + ticket
}

// dial opens a session; on a refusal it returns the HTTP status and the
// error body's code.
func (s setup) dial(t *testing.T, id, ticket string, header http.Header) (*websocket.Conn, int, apierr.Code) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.url(id, ticket), &websocket.DialOptions{HTTPHeader: header})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
		return c, resp.StatusCode, ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	var body apierr.Body
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return nil, resp.StatusCode, body.Error.Code
}

func TestTicketRefusalsComeBeforeTheUpgradeAndDoNotSpendTheTicket(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 8)
	d := s.create(t, s.alice)
	s.run(t, d)
	good := s.ticket(t, s.alice, d.ID)
	expired, err := s.env.Tickets.Sign(device.Ticket{ID: "e1", DeviceID: d.ID, UserID: s.alice.ID, ExpiresAt: time.Now().Add(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	forgedUser, err := s.env.Tickets.Sign(device.Ticket{ID: "f1", DeviceID: d.ID, UserID: s.bob.ID, ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	payload, _, _ := strings.Cut(good, ".")
	bobs, err := s.env.Tickets.Sign(device.Ticket{ID: "b1", DeviceID: "7c9e6679-7425-40de-944b-e07fc1f90ae7", UserID: s.bob.ID, ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		id     string
		ticket string
		header http.Header
		status int
		code   apierr.Code
	}{
		{"no ticket", d.ID, "", nil, http.StatusUnauthorized, apierr.Unauthorized},
		{"forged signature", d.ID, payload + ".AAAA", nil, http.StatusUnauthorized, apierr.Unauthorized},
		{"garbage", d.ID, "not-a-ticket", nil, http.StatusUnauthorized, apierr.Unauthorized},
		{"expired", d.ID, expired, nil, http.StatusUnauthorized, apierr.Unauthorized},
		{"bob's ticket for his device on alice's device", d.ID, bobs, nil, http.StatusForbidden, apierr.Forbidden},
		{"a signed ticket naming bob for alice's device", d.ID, forgedUser, nil, http.StatusForbidden, apierr.Forbidden},
		{"alice's ticket presented with bob's access token", d.ID, good, http.Header{"Authorization": {"Bearer " + s.bob.Token}}, http.StatusForbidden, apierr.Forbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, status, code := s.dial(t, c.id, c.ticket, c.header)
			if status != c.status || code != c.code {
				t.Fatalf("status %d code %q, want %d %q", status, code, c.status, c.code)
			}
		})
	}
	if n := s.fn.Sessions(); n != 0 {
		t.Fatalf("%d sessions open after refusals", n)
	}
	// None of the refusals spent alice's ticket: it still opens a session.
	if _, status, code := s.dial(t, d.ID, good, nil); status != http.StatusSwitchingProtocols {
		t.Fatalf("good ticket after refusals: %d %s", status, code)
	}
}

func TestReusedTicketIsRefusedByAnyGatewayInstance(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 8)
	d := s.create(t, s.alice)
	s.run(t, d)
	tk := s.ticket(t, s.alice, d.ID)
	c, status, code := s.dial(t, d.ID, tk, nil)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("first use: %d %s", status, code)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	if _, status, code := s.dial(t, d.ID, tk, nil); status != http.StatusUnauthorized || code != apierr.Unauthorized {
		t.Fatalf("reuse on the same instance: %d %s", status, code)
	}
	// A second instance sharing Redis refuses it too.
	other, err := deviceadbgateway.New(deviceadbgateway.Options{Devices: s.env.Service, Redis: s.env.Users.Redis, Verifier: s.env.Users.Service.Verifier(), Log: logging.Discard(),
		Config: deviceadbgateway.Config{MaxSessionsPerUser: 8, WatchInterval: time.Second, DialTimeout: time.Second,
			RedisPrefix: s.prefix}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(other.Handle))
	defer srv.Close()
	s2 := s
	s2.srv = srv
	if _, status, code := s2.dial(t, d.ID, tk, nil); status != http.StatusUnauthorized || code != apierr.Unauthorized {
		t.Fatalf("reuse on another instance: %d %s", status, code)
	}
}

func TestPhoneNotRunningIsConflictBeforeTheUpgrade(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 8)
	d := s.create(t, s.alice)
	s.run(t, d)
	tk := s.ticket(t, s.alice, d.ID)
	if _, err := s.env.Service.Stop(bg, s.alice.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, status, code := s.dial(t, d.ID, tk, nil); status != http.StatusConflict || code != apierr.Conflict {
		t.Fatalf("stopping phone: %d %s", status, code)
	}
}

func TestSessionCarriesBinaryMessagesBothWaysAndReportsOpenedAndClosed(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 8)
	d := s.create(t, s.alice)
	s.run(t, d)
	c, status, code := s.dial(t, d.ID, s.ticket(t, s.alice, d.ID), nil)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("dial: %d %s", status, code)
	}
	conn := websocket.NetConn(bg, c, websocket.MessageBinary)
	msg := bytes.Repeat([]byte("CNXN\x00\x01"), 40000)
	go func() { _, _ = conn.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the phone's echo differs from what was sent")
	}
	if opened := s.env.Outbox(t, deviceevents.EventConnectionOpened, d.ID); len(opened) != 1 || opened[0]["user_id"] != s.alice.ID {
		t.Fatalf("opened facts: %v", opened)
	}
	// Past the server's read and write timeouts, the session still carries.
	time.Sleep(1500 * time.Millisecond)
	if _, err := conn.Write(msg[:6]); err != nil {
		t.Fatalf("write after the server timeouts: %v", err)
	}
	if _, err := io.ReadFull(conn, got[:6]); err != nil {
		t.Fatalf("read after the server timeouts: %v", err)
	}
	_ = conn.Close()
	waitFor(t, "the closed fact", func() bool { return len(s.env.Outbox(t, deviceevents.EventConnectionClosed, d.ID)) == 1 })
	closed := s.env.Outbox(t, deviceevents.EventConnectionClosed, d.ID)[0]
	opened := s.env.Outbox(t, deviceevents.EventConnectionOpened, d.ID)[0]
	if closed["session_id"] != opened["session_id"] || closed["bytes_in"] != float64(len(msg)+6) || closed["bytes_out"] != float64(len(msg)+6) {
		t.Fatalf("closed fact %v for opened %v", closed, opened)
	}
}

func TestSessionEndsWhenThePhoneStops(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 8)
	d := s.create(t, s.alice)
	s.run(t, d)
	c, status, code := s.dial(t, d.ID, s.ticket(t, s.alice, d.ID), nil)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("dial: %d %s", status, code)
	}
	if _, err := s.env.Service.Stop(bg, s.alice.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	if status := websocket.CloseStatus(err); status != websocket.StatusGoingAway {
		t.Fatalf("read after the stop: %v (status %d), want going away", err, status)
	}
	waitFor(t, "the closed fact", func() bool {
		f := s.env.Outbox(t, deviceevents.EventConnectionClosed, d.ID)
		return len(f) == 1 && f[0]["reason"] == deviceevents.ConnectionDeviceStopped
	})
}

func TestSessionsPerUserAreLimited(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 1)
	d := s.create(t, s.alice)
	s.run(t, d)
	first, status, _ := s.dial(t, d.ID, s.ticket(t, s.alice, d.ID), nil)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("first session: %d", status)
	}
	if _, status, code := s.dial(t, d.ID, s.ticket(t, s.alice, d.ID), nil); status != http.StatusTooManyRequests || code != apierr.RateLimited {
		t.Fatalf("second session: %d %s", status, code)
	}
	_ = first.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the slot given back", func() bool { return s.fn.Sessions() == 0 })
	if _, status, code := s.dial(t, d.ID, s.ticket(t, s.alice, d.ID), nil); status != http.StatusSwitchingProtocols {
		t.Fatalf("session after the first closed: %d %s", status, code)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come in 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
