package device_test

import (
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestDuplicateAndOutOfOrderReportsChangeNothing(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := running(t, env, a)
	t0 := time.Now().Add(time.Minute)
	crash := devicetest.Report(t, deviceevents.EventRuntimeCrashed, d.ID, t0)
	started := devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, t0.Add(time.Second))
	env.Apply(t, crash)
	wantState(t, env, a, d.ID, device.StateError)
	env.Apply(t, started)
	wantState(t, env, a, d.ID, device.StateRunning)

	// The same crash again (a redelivery) and an older crash: no change.
	env.Apply(t, crash)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCrashed, d.ID, t0.Add(-time.Hour)))
	wantState(t, env, a, d.ID, device.StateRunning)
	if e := env.Outbox(t, deviceevents.EventError, d.ID); len(e) != 1 {
		t.Fatalf("error facts = %d, want 1", len(e))
	}
	if r := env.Outbox(t, deviceevents.EventRunning, d.ID); len(r) != 2 {
		t.Fatalf("running facts = %d, want 2", len(r))
	}
	// A report answering an older command (seq) is stale.
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, d.ID, t0.Add(time.Hour), func(r *deviceevents.RuntimeReport) { r.Seq = 0 + 0 }))
	wantState(t, env, a, d.ID, device.StateStopped) // seq 0 means "not given": applied
	if _, err := env.Service.Start(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, d.ID, t0.Add(2*time.Hour), func(r *deviceevents.RuntimeReport) { r.Seq = 1 }))
	wantState(t, env, a, d.ID, device.StateStarting)
	// A report from another node is ignored.
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, t0.Add(3*time.Hour), func(r *deviceevents.RuntimeReport) {
		r.NodeID = "00000000-0000-4000-8000-00000000dead"
	}))
	wantState(t, env, a, d.ID, device.StateStarting)

	// After deletion nothing brings the device back.
	if _, err := env.Service.Delete(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeRemoved, d.ID, t0.Add(4*time.Hour)))
	for _, typ := range deviceevents.RuntimeReports {
		env.Apply(t, devicetest.Report(t, typ, d.ID, t0.Add(5*time.Hour)))
	}
	wantState(t, env, a, d.ID, device.StateDeleted)
	if q := env.Quota(t, a.ID); q.Usage != (devicetest.Usage{}) {
		t.Fatalf("quota after late reports = %+v", q.Usage)
	}
	if n := len(env.Outbox(t, deviceevents.EventDeleted, d.ID)); n != 1 {
		t.Fatalf("deleted facts = %d", n)
	}
	// A report for a device nobody knows is acknowledged.
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, events.NewID(), t0))
}

func TestACrashGoesToErrorAndReleasesTheSlotUntilTheRecreatedContainerRuns(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := running(t, env, a)
	t0 := time.Now().Add(time.Minute)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCrashed, d.ID, t0, func(r *deviceevents.RuntimeReport) {
		code := 137
		r.Reason, r.ExitCode = "container died", &code
	}))
	got := wantState(t, env, a, d.ID, device.StateError)
	if got.LastError != "container died (exit code 137)" || got.RunningSince != nil {
		t.Fatalf("failed device = %+v", got)
	}
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 0 {
		t.Fatalf("a failed device holds a running slot: %+v", q.Usage)
	}
	if e := env.Outbox(t, deviceevents.EventError, d.ID); len(e) != 1 || e[0]["reason"] != "container died (exit code 137)" {
		t.Fatalf("error facts = %v", e)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, d.ID, t0.Add(time.Second), func(r *deviceevents.RuntimeReport) { r.ContainerID = "new" }))
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, t0.Add(2*time.Second)))
	got = wantState(t, env, a, d.ID, device.StateRunning)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 1 || got.LastError != "" {
		t.Fatalf("recovered device %+v, usage %+v", got, q.Usage)
	}
}

func TestARecoveredDeviceOverTheRunningLimitIsStoppedAndNeverCounted(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(1, 0)) // 2 devices, 1 running
	d1 := running(t, env, a)
	t0 := time.Now().Add(time.Minute)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCrashed, d1.ID, t0))
	running(t, env, a) // takes the running slot d1 gave back
	// The runtime recreated d1's container: it runs, but there is no slot.
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d1.ID, t0.Add(time.Second)))
	got := wantState(t, env, a, d1.ID, device.StateStopping)
	if got.StopReason != deviceevents.ReasonQuotaExceeded || got.RunningSince != nil {
		t.Fatalf("over-limit device = %+v", got)
	}
	if c := env.Outbox(t, deviceevents.EventStopRequested, d1.ID); len(c) != 1 || c[0]["reason"] != deviceevents.ReasonQuotaExceeded {
		t.Fatalf("stop commands = %v", c)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, d1.ID, t0.Add(2*time.Second)))
	wantState(t, env, a, d1.ID, device.StateStopped)
	if r, s := env.Outbox(t, deviceevents.EventRunning, d1.ID), env.Outbox(t, deviceevents.EventStopped, d1.ID); len(r) != 1 || len(s) != 0 {
		t.Fatalf("facts of d1: %d running, %d stopped; want the first interval only (closed by its error)", len(r), len(s))
	}
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 1 {
		t.Fatalf("usage = %+v", q.Usage)
	}
}
