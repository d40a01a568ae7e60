package deviceidlestop_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceidlestop"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

// minute makes the free tier's 30 idle minutes last 600 ms.
const minute = 20 * time.Millisecond

type setup struct {
	env devicetest.Env
	fn  *deviceidlestop.Function
	acc devicetest.Account
}

func newSetup(t *testing.T) setup {
	t.Helper()
	env := devicetest.New(t)
	fn := deviceidlestop.New(env.Service, deviceidlestop.Config{Minute: minute, Lease: time.Minute, SessionMaxAge: time.Hour},
		logging.Discard())
	acc := env.User(t, "idris")
	env.Grant(t, acc.ID, devicetest.Limits{MaxDevices: 3, MaxRunningDevices: 3, MaxCPUCores: 6, MaxMemoryMB: 6144, MaxStorageGB: 64})
	return setup{env: env, fn: fn, acc: acc}
}

// running creates a device and reports it running now.
func (s setup) running(t *testing.T, name string) device.Device {
	t.Helper()
	d, err := s.env.Service.Create(context.Background(), s.acc.Principal, device.CreateRequest{Name: name, CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	s.env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, time.Now()))
	return s.get(t, d.ID)
}

func (s setup) get(t *testing.T, id string) device.Device {
	t.Helper()
	d, err := s.env.Service.Get(context.Background(), s.acc.Principal, id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (s setup) handle(t *testing.T, typ, subject string, data any) {
	t.Helper()
	ev, err := events.New(context.Background(), typ, "/test", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.fn.Handle(context.Background(), ev); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
}

func (s setup) tick(t *testing.T) {
	t.Helper()
	s.handle(t, deviceevents.EventIdleCheckRequested, "idle", events.Tick{ScheduledAt: time.Now()})
}

func (s setup) session(t *testing.T, typ, deviceID, sessionID string, at time.Time) {
	t.Helper()
	s.handle(t, typ, deviceID, deviceevents.ConnectionFact{SchemaVersion: 1, DeviceID: deviceID, UserID: s.acc.ID,
		SessionID: sessionID, At: at})
}

func TestAnIdlePhoneIsStoppedAndAConnectedOneKeepsRunning(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	idle, connected, closedEarly := s.running(t, "idle"), s.running(t, "connected"), s.running(t, "closed-early")
	if idle.IdleMinutes != 30 {
		t.Fatalf("idle_minutes = %d, want the free tier's 30 from the user context", idle.IdleMinutes)
	}
	s.session(t, deviceevents.EventConnectionOpened, connected.ID, "s-connected", time.Now())
	// A closed fact that overtakes its opened fact: the session stays closed.
	at := time.Now()
	s.session(t, deviceevents.EventConnectionClosed, closedEarly.ID, "s-early", at)
	s.session(t, deviceevents.EventConnectionOpened, closedEarly.ID, "s-early", at)

	s.tick(t)
	for _, d := range []device.Device{idle, connected, closedEarly} {
		if got := s.get(t, d.ID); got.State != device.StateRunning {
			t.Fatalf("%s before its idle limit: %s", d.Name, got.State)
		}
	}
	time.Sleep(30*minute + 200*time.Millisecond)
	s.tick(t)
	for _, tc := range []struct {
		d      device.Device
		state  device.State
		reason string
	}{
		{idle, device.StateStopping, deviceevents.ReasonIdle},
		{closedEarly, device.StateStopping, deviceevents.ReasonIdle},
		{connected, device.StateRunning, ""},
	} {
		got := s.get(t, tc.d.ID)
		if got.State != tc.state || got.StopReason != tc.reason {
			t.Fatalf("%s: %s (%q), want %s (%q)", tc.d.Name, got.State, got.StopReason, tc.state, tc.reason)
		}
	}
	stops := s.env.Outbox(t, deviceevents.EventStopRequested, idle.ID)
	if len(stops) != 1 || stops[0]["reason"] != deviceevents.ReasonIdle {
		t.Fatalf("stop commands of the idle phone = %v", stops)
	}
	s.tick(t)
	if n := len(s.env.Outbox(t, deviceevents.EventStopRequested, idle.ID)); n != 1 {
		t.Fatalf("a second run wrote %d stop commands, want the one", n)
	}

	// Once its session closes, the connected phone's idle clock runs from
	// the close.
	s.session(t, deviceevents.EventConnectionClosed, connected.ID, "s-connected", time.Now())
	s.tick(t)
	if got := s.get(t, connected.ID); got.State != device.StateRunning {
		t.Fatalf("connected phone right after its session closed: %s", got.State)
	}
	time.Sleep(30*minute + 200*time.Millisecond)
	s.tick(t)
	if got := s.get(t, connected.ID); got.State != device.StateStopping || got.StopReason != deviceevents.ReasonIdle {
		t.Fatalf("connected phone idle since its session closed: %s (%q)", got.State, got.StopReason)
	}
}

func TestUseThroughTheAPIRestartsTheIdleClock(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	d := s.running(t, "used")
	time.Sleep(20 * minute)
	if err := s.env.Service.Touch(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(15 * minute)
	s.tick(t)
	if got := s.get(t, d.ID); got.State != device.StateRunning {
		t.Fatalf("used 15 idle minutes ago: %s, want running", got.State)
	}
}

func TestAPlanRaisesTheIdleLimit(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	acc := env.User(t, "pat")
	env.Grant(t, acc.ID, devicetest.Limits{MaxDevices: 1, IdleMinutes: 120})
	d, err := env.Service.Create(context.Background(), acc.Principal, device.CreateRequest{Name: "p", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if d.IdleMinutes != 120 {
		t.Fatalf("idle_minutes = %d, want the plan's 120", d.IdleMinutes)
	}
}

func TestOnlyTheLeaseHolderStopsIdlePhones(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	d := s.running(t, "leased")
	time.Sleep(30*minute + 200*time.Millisecond)
	ctx := context.Background()
	// Another instance's run holds the lease: this one does nothing.
	if _, err := s.env.Pool.Exec(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, 'other', now() + interval '1 hour')`,
		device.IdleLease); err != nil {
		t.Fatal(err)
	}
	s.tick(t)
	if got := s.get(t, d.ID); got.State != device.StateRunning {
		t.Fatalf("stopped while another run held the lease: %s", got.State)
	}
	// That run died: once its lease expires, the next run acts.
	if _, err := s.env.Pool.Exec(ctx, `UPDATE leases SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	// Overlapping runs: exactly one stop command whatever the interleaving.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { s.tick(t) })
	}
	wg.Wait()
	s.tick(t)
	if got := s.get(t, d.ID); got.State != device.StateStopping || got.StopReason != deviceevents.ReasonIdle {
		t.Fatalf("after the lease expired: %s (%q)", got.State, got.StopReason)
	}
	if n := len(s.env.Outbox(t, deviceevents.EventStopRequested, d.ID)); n != 1 {
		t.Fatalf("%d stop commands, want 1", n)
	}
}
