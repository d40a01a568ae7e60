package device_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestStartIsRefusedAtTheRunningDevicesLimit(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(1, 0)) // 2 devices, 1 running
	d1 := running(t, env, a)
	if _, err := env.Service.Stop(bg, a.Principal, d1.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, d1.ID, time.Now().Add(time.Minute)))
	d2 := running(t, env, a)
	_, err := env.Service.Start(bg, a.Principal, d1.ID)
	wantCode(t, err, apierr.QuotaExceeded)
	wantState(t, env, a, d1.ID, device.StateStopped)
	if c := env.Outbox(t, deviceevents.EventStartRequested, d1.ID); len(c) != 0 {
		t.Fatalf("a refused start sent a command: %v", c)
	}
	// A create that would run a second device is refused too.
	_, err = env.Service.Create(bg, a.Principal, small())
	wantCode(t, err, apierr.QuotaExceeded)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 1 || q.Usage.Devices != 2 {
		t.Fatalf("usage = %+v", q.Usage)
	}
	// Once d2 stops, d1 may start.
	if _, err := env.Service.Stop(bg, a.Principal, d2.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, d2.ID, time.Now().Add(time.Minute)))
	if _, err := env.Service.Start(bg, a.Principal, d1.ID); err != nil {
		t.Fatalf("start after a slot freed: %v", err)
	}
}

func TestQuotaServiceDownIsUnavailableAndRecordsNothing(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	q, err := device.NewQuotaClient("http://127.0.0.1:1", &http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	err = q.Reserve(bg, a.ID, device.QuotaReservation{DeviceID: events.NewID(), CPUCores: 1, MemoryMB: 1})
	if !apierr.Is(err, apierr.Unavailable) || errors.Is(err, context.Canceled) {
		t.Fatalf("reserve against a dead service: %v", err)
	}
}

// When a plan's grant is revoked and the user may now run fewer devices than
// run, the newest are stopped (reason quota_reduced) and the oldest keep
// running; a redelivery stops nothing more.
func TestQuotaRevokedStopsTheNewestDevicesBeyondTheRunningLimit(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "carol")
	env.Grant(t, a.ID, roomy(4, 4))
	oldest, middle, newest := running(t, env, a), running(t, env, a), running(t, env, a)

	var q userevents.QuotaRevoked
	q.SchemaVersion, q.UserID, q.Limits.MaxRunningDevices = 1, a.ID, 1
	ev, err := events.New(bg, userevents.EventQuotaRevoked, "/cloudphone/user/test", "grant-1", q)
	if err != nil {
		t.Fatal(err)
	}
	n, err := env.Service.StopBeyondQuota(bg, ev, a.ID, q.Limits.MaxRunningDevices)
	if err != nil || n != 2 {
		t.Fatalf("StopBeyondQuota = %d, %v; want 2 devices", n, err)
	}
	if n, err := env.Service.StopBeyondQuota(bg, ev, a.ID, q.Limits.MaxRunningDevices); err != nil || n != 0 {
		t.Fatalf("a redelivery stopped %d devices (%v)", n, err)
	}
	wantState(t, env, a, oldest.ID, device.StateRunning)
	for _, d := range []device.Device{middle, newest} {
		got := wantState(t, env, a, d.ID, device.StateStopping)
		if got.StopReason != deviceevents.ReasonQuotaReduced {
			t.Fatalf("stop reason = %q", got.StopReason)
		}
		if c := env.Outbox(t, deviceevents.EventStopRequested, d.ID); len(c) != 1 || c[0]["reason"] != deviceevents.ReasonQuotaReduced {
			t.Fatalf("stop commands of %s = %v", d.ID, c)
		}
	}
}
