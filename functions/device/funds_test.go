package device_test

import (
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestBalanceExhaustedStopsEveryDeviceOfThatUserThatRunsOrWillOnce(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	b := env.User(t, "bob")
	env.Grant(t, a.ID, roomy(4, 4))
	r1, r2 := running(t, env, a), running(t, env, a)
	stopped := running(t, env, a)
	if _, err := env.Service.Stop(bg, a.Principal, stopped.ID); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, stopped.ID, now.Add(time.Minute)))
	creating := create(t, env, a)
	failed := running(t, env, a)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCrashed, failed.ID, now.Add(time.Minute)))
	other := running(t, env, b)

	ev, err := events.New(bg, billingevents.EventBalanceExhausted, "/cloudphone/billing/test", a.ID,
		billingevents.BalanceExhausted{SchemaVersion: 1, UserID: a.ID, Balance: 0, Currency: "CNY", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := env.Service.StopForFunds(bg, ev, a.ID)
	if err != nil || n != 4 {
		t.Fatalf("StopForFunds = %d, %v; want 4 devices", n, err)
	}
	if n, err := env.Service.StopForFunds(bg, ev, a.ID); err != nil || n != 0 {
		t.Fatalf("a redelivery stopped %d devices (%v)", n, err)
	}
	for _, d := range []device.Device{r1, r2, creating, failed} {
		if c := env.Outbox(t, deviceevents.EventStopRequested, d.ID); len(c) != 1 || c[0]["reason"] != deviceevents.ReasonInsufficientFunds {
			t.Fatalf("stop commands of %s = %v", d.ID, c)
		}
	}
	wantState(t, env, a, failed.ID, device.StateStopped)
	for _, d := range []device.Device{r1, r2} {
		got := wantState(t, env, a, d.ID, device.StateStopping)
		if got.StopReason != deviceevents.ReasonInsufficientFunds {
			t.Fatalf("stop reason = %q", got.StopReason)
		}
		env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, d.ID, now.Add(time.Hour)))
		if s := env.Outbox(t, deviceevents.EventStopped, d.ID); len(s) != 1 || s[0]["reason"] != deviceevents.ReasonInsufficientFunds {
			t.Fatalf("stopped facts of %s = %v", d.ID, s)
		}
	}
	// The device being created is created, started and stopped by the
	// runtime in that order, and never counted as running.
	wantState(t, env, a, creating.ID, device.StateStopping)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, creating.ID, now.Add(time.Hour)))
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, creating.ID, now.Add(time.Hour+time.Second)))
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, creating.ID, now.Add(time.Hour+2*time.Second)))
	got := wantState(t, env, a, creating.ID, device.StateStopped)
	if got.ContainerID == "" || len(env.Outbox(t, deviceevents.EventRunning, creating.ID)) != 0 {
		t.Fatalf("device stopped while being created: %+v, running facts %v", got, env.Outbox(t, deviceevents.EventRunning, creating.ID))
	}
	wantState(t, env, a, stopped.ID, device.StateStopped)
	wantState(t, env, b, other.ID, device.StateRunning)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 0 {
		t.Fatalf("usage after the stops = %+v", q.Usage)
	}
	if _, err := env.Service.Start(bg, a.Principal, creating.ID); err != nil {
		t.Fatal(err)
	}
	if c := env.Outbox(t, deviceevents.EventStartRequested, creating.ID); len(c) != 1 {
		t.Fatalf("start of a device created while stopping sent %v", c)
	}
}
