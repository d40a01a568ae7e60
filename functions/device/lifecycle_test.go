package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestLifecycleRunsStopsStartsRestartsAndDeleteFreesPortQuotaAndNode(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := create(t, env, a)
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, d.ID, t0))
	wantState(t, env, a, d.ID, device.StateCreating)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, t0.Add(time.Second)))
	got := wantState(t, env, a, d.ID, device.StateRunning)
	if got.ContainerID == "" || got.RunningSince == nil || !got.RunningSince.Equal(t0.Add(time.Second)) {
		t.Fatalf("running device = %+v", got)
	}
	facts := env.Outbox(t, deviceevents.EventRunning, d.ID)
	if len(facts) != 1 || facts[0]["at"] != t0.Add(time.Second).Format(time.RFC3339Nano) || facts[0]["cpu_cores"] != float64(1) {
		t.Fatalf("running facts = %v", facts)
	}

	if _, err := env.Service.Stop(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, env, a, d.ID, device.StateStopping)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 1 {
		t.Fatalf("running slot released before the runtime reported stopped: %+v", q.Usage)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, d.ID, t0.Add(2*time.Second)))
	wantState(t, env, a, d.ID, device.StateStopped)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 0 || q.Usage.Devices != 1 {
		t.Fatalf("quota after stopped = %+v", q.Usage)
	}
	if s := env.Outbox(t, deviceevents.EventStopped, d.ID); len(s) != 1 || s[0]["reason"] != deviceevents.ReasonUser {
		t.Fatalf("stopped facts = %v", s)
	}

	if _, err := env.Service.Start(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, env, a, d.ID, device.StateStarting)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 1 {
		t.Fatalf("start took no running slot: %+v", q.Usage)
	}
	if c := env.Outbox(t, deviceevents.EventStartRequested, d.ID); len(c) != 1 {
		t.Fatalf("start commands = %v", c)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, t0.Add(3*time.Second)))
	wantState(t, env, a, d.ID, device.StateRunning)

	if _, err := env.Service.Restart(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, env, a, d.ID, device.StateRestarting)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeRestarted, d.ID, t0.Add(4*time.Second)))
	wantState(t, env, a, d.ID, device.StateRunning)
	if r := env.Outbox(t, deviceevents.EventRunning, d.ID); len(r) != 2 {
		t.Fatalf("a restart opened another running interval: %v", r)
	}

	if _, err := env.Service.Delete(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, env, a, d.ID, device.StateDeleting)
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeRemoved, d.ID, t0.Add(5*time.Second)))
	got = wantState(t, env, a, d.ID, device.StateDeleted)
	if got.DeletedAt == nil {
		t.Fatal("deleted device has no deleted_at")
	}
	if q := env.Quota(t, a.ID); q.Usage != (devicetest.Usage{}) {
		t.Fatalf("quota after delete = %+v, want all zero", q.Usage)
	}
	if n := count(t, env, `SELECT count(*) FROM device_ports`); n != 0 {
		t.Fatalf("%d ports still held", n)
	}
	if n := count(t, env, `SELECT allocated_cpu_cores + allocated_memory_mb FROM nodes WHERE id = $1`, d.NodeID); n != 0 {
		t.Fatalf("node still has %d allocated", n)
	}
	stops := env.Outbox(t, deviceevents.EventStopped, d.ID)
	if len(stops) != 2 || stops[1]["reason"] != deviceevents.ReasonDeleted {
		t.Fatalf("deleting a running device did not close its interval: %v", stops)
	}
	if del := env.Outbox(t, deviceevents.EventDeleted, d.ID); len(del) != 1 || del[0]["user_id"] != a.ID {
		t.Fatalf("deleted facts = %v", del)
	}
	// The freed port is handed out again.
	if d2 := create(t, env, a); d2.ADBPort != 28000 {
		t.Fatalf("next device got port %d, want the freed 28000", d2.ADBPort)
	}
}

func TestRequestsThatDoNotFitTheStateAreConflicts(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(10, 10))
	now := time.Now()
	creating := create(t, env, a)
	run := running(t, env, a)
	stopped := running(t, env, a)
	if _, err := env.Service.Stop(bg, a.Principal, stopped.ID); err != nil {
		t.Fatal(err)
	}
	stopping := running(t, env, a)
	if _, err := env.Service.Stop(bg, a.Principal, stopping.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, stopped.ID, now.Add(time.Minute)))
	deleted := create(t, env, a)
	if _, err := env.Service.Delete(bg, a.Principal, deleted.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeRemoved, deleted.ID, now.Add(time.Minute)))

	ops := map[string]func(ctx context.Context, id string) error{
		"start": func(ctx context.Context, id string) error {
			_, err := env.Service.Start(ctx, a.Principal, id)
			return err
		},
		"stop": func(ctx context.Context, id string) error {
			_, err := env.Service.Stop(ctx, a.Principal, id)
			return err
		},
		"restart": func(ctx context.Context, id string) error {
			_, err := env.Service.Restart(ctx, a.Principal, id)
			return err
		},
		"delete": func(ctx context.Context, id string) error {
			_, err := env.Service.Delete(ctx, a.Principal, id)
			return err
		},
		"connect": func(ctx context.Context, id string) error {
			_, err := env.Service.Connect(ctx, a.Principal, id, "ws://gw.example")
			return err
		},
	}
	for _, c := range []struct {
		op string
		d  device.Device
	}{
		{"start", creating}, {"stop", creating}, {"restart", creating}, {"connect", creating},
		{"start", run},
		{"stop", stopped}, {"restart", stopped}, {"connect", stopped},
		{"start", stopping}, {"stop", stopping}, {"restart", stopping},
		{"start", deleted}, {"stop", deleted}, {"restart", deleted}, {"delete", deleted}, {"connect", deleted},
	} {
		if err := ops[c.op](bg, c.d.ID); !apierr.Is(err, apierr.Conflict) {
			t.Errorf("%s a %s device: err = %v, want conflict", c.op, get(t, env, a, c.d.ID).State, err)
		}
	}
}
