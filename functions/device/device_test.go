package device_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

var bg = context.Background()

// roomy is a grant that lifts every limit far above what a test uses, except
// the device and running counts given.
func roomy(devices, running int) devicetest.Limits {
	return devicetest.Limits{MaxDevices: devices, MaxRunningDevices: running, MaxCPUCores: 1000, MaxMemoryMB: 1 << 20,
		MaxStorageGB: 10000, DeviceMaxCPUCores: 16, DeviceMaxMemoryMB: 65536}
}

func small() device.CreateRequest {
	return device.CreateRequest{Name: "phone", CPUCores: 1, MemoryMB: 1024}
}

func create(t *testing.T, env devicetest.Env, a devicetest.Account) device.Device {
	t.Helper()
	d, err := env.Service.Create(bg, a.Principal, small())
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return d
}

func get(t *testing.T, env devicetest.Env, a devicetest.Account, id string) device.Device {
	t.Helper()
	d, err := env.Service.Get(bg, a.Principal, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return d
}

// running creates a device for a and reports it created and started.
func running(t *testing.T, env devicetest.Env, a devicetest.Account) device.Device {
	t.Helper()
	d := create(t, env, a)
	now := time.Now()
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCreated, d.ID, now))
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, d.ID, now.Add(time.Millisecond)))
	d = get(t, env, a, d.ID)
	if d.State != device.StateRunning {
		t.Fatalf("state after created+started = %s, want running", d.State)
	}
	return d
}

func wantState(t *testing.T, env devicetest.Env, a devicetest.Account, id string, want device.State) device.Device {
	t.Helper()
	d := get(t, env, a, id)
	if d.State != want {
		t.Fatalf("device %s is %s, want %s", id, d.State, want)
	}
	return d
}

func wantCode(t *testing.T, err error, code apierr.Code) {
	t.Helper()
	if !apierr.Is(err, code) {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

func count(t *testing.T, env devicetest.Env, query string, args ...any) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(bg, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestCreateRecordsCreatingOnANodeWithTheLowestFreePortAndSendsTheCommand(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := create(t, env, a)
	if d.State != device.StateCreating || d.ADBPort != 40000 || d.NodeName != "local" || d.NodeID == "" ||
		d.Image != device.DefaultImage || d.StorageGB != 8 || d.UserID != a.ID {
		t.Fatalf("created device = %+v", d)
	}
	q := env.Quota(t, a.ID)
	if q.Usage.Devices != 1 || q.Usage.RunningDevices != 1 || q.Usage.CPUCores != 1 || q.Usage.MemoryMB != 1024 || q.Usage.StorageGB != 8 {
		t.Fatalf("quota usage after create = %+v", q.Usage)
	}
	cmds := env.Outbox(t, device.EventCreateRequested, d.ID)
	if len(cmds) != 1 || cmds[0]["adb_port"] != float64(40000) || cmds[0]["node_id"] != d.NodeID ||
		cmds[0]["docker_host"] != "unix:///var/run/docker.sock" || cmds[0]["image"] != device.DefaultImage ||
		cmds[0]["user_id"] != a.ID || cmds[0]["cpu_cores"] != float64(1) || cmds[0]["memory_mb"] != float64(1024) {
		t.Fatalf("create command = %v", cmds)
	}
	if n := count(t, env, `SELECT allocated_cpu_cores FROM nodes WHERE id = $1`, d.NodeID); n != 1 {
		t.Fatalf("node allocated cpu = %d, want 1", n)
	}
	if n := count(t, env, `SELECT port FROM device_ports WHERE device_id = $1`, d.ID); n != 40000 {
		t.Fatalf("port row = %d", n)
	}
}

func TestCreateValidatesTheRequest(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	neg := -1
	for name, req := range map[string]device.CreateRequest{
		"no name":         {CPUCores: 1, MemoryMB: 1024},
		"zero cores":      {Name: "p", MemoryMB: 1024},
		"tiny memory":     {Name: "p", CPUCores: 1, MemoryMB: 1},
		"negative disk":   {Name: "p", CPUCores: 1, MemoryMB: 1024, StorageGB: &neg},
		"unknown image":   {Name: "p", CPUCores: 1, MemoryMB: 1024, Image: "evil/miner:latest"},
		"control in name": {Name: "p\x00", CPUCores: 1, MemoryMB: 1024},
	} {
		_, err := env.Service.Create(bg, a.Principal, req)
		if !apierr.Is(err, apierr.Invalid) {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	if q := env.Quota(t, a.ID); q.Usage.Devices != 0 {
		t.Fatalf("an invalid request reserved quota: %+v", q.Usage)
	}
	d, err := env.Service.Create(bg, a.Principal, device.CreateRequest{Name: "p", CPUCores: 1, MemoryMB: 1024, Image: "cloudphone/phone-standin:latest"})
	if err != nil || d.Image != "cloudphone/phone-standin:latest" {
		t.Fatalf("create with an offered image: %+v %v", d, err)
	}
}

func TestLifecycleRunsStopsStartsRestartsAndDeleteFreesPortQuotaAndNode(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := create(t, env, a)
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCreated, d.ID, t0))
	wantState(t, env, a, d.ID, device.StateCreating)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, d.ID, t0.Add(time.Second)))
	got := wantState(t, env, a, d.ID, device.StateRunning)
	if got.ContainerID == "" || got.RunningSince == nil || !got.RunningSince.Equal(t0.Add(time.Second)) {
		t.Fatalf("running device = %+v", got)
	}
	facts := env.Outbox(t, device.EventRunning, d.ID)
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
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, d.ID, t0.Add(2*time.Second)))
	wantState(t, env, a, d.ID, device.StateStopped)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 0 || q.Usage.Devices != 1 {
		t.Fatalf("quota after stopped = %+v", q.Usage)
	}
	if s := env.Outbox(t, device.EventStopped, d.ID); len(s) != 1 || s[0]["reason"] != device.ReasonUser {
		t.Fatalf("stopped facts = %v", s)
	}

	if _, err := env.Service.Start(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, env, a, d.ID, device.StateStarting)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 1 {
		t.Fatalf("start took no running slot: %+v", q.Usage)
	}
	if c := env.Outbox(t, device.EventStartRequested, d.ID); len(c) != 1 {
		t.Fatalf("start commands = %v", c)
	}
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, d.ID, t0.Add(3*time.Second)))
	wantState(t, env, a, d.ID, device.StateRunning)

	if _, err := env.Service.Restart(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, env, a, d.ID, device.StateRestarting)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeRestarted, d.ID, t0.Add(4*time.Second)))
	wantState(t, env, a, d.ID, device.StateRunning)
	if r := env.Outbox(t, device.EventRunning, d.ID); len(r) != 2 {
		t.Fatalf("a restart opened another running interval: %v", r)
	}

	if _, err := env.Service.Delete(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, env, a, d.ID, device.StateDeleting)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeRemoved, d.ID, t0.Add(5*time.Second)))
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
	stops := env.Outbox(t, device.EventStopped, d.ID)
	if len(stops) != 2 || stops[1]["reason"] != device.ReasonDeleted {
		t.Fatalf("deleting a running device did not close its interval: %v", stops)
	}
	if del := env.Outbox(t, device.EventDeleted, d.ID); len(del) != 1 || del[0]["user_id"] != a.ID {
		t.Fatalf("deleted facts = %v", del)
	}
	// The freed port is handed out again.
	if d2 := create(t, env, a); d2.ADBPort != 40000 {
		t.Fatalf("next device got port %d, want the freed 40000", d2.ADBPort)
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
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, stopped.ID, now.Add(time.Minute)))
	deleted := create(t, env, a)
	if _, err := env.Service.Delete(bg, a.Principal, deleted.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, device.EventRuntimeRemoved, deleted.ID, now.Add(time.Minute)))

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
			_, err := env.Service.Connect(ctx, a.Principal, id)
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

func TestConcurrentCreatesAtTheQuotaEdgeNeverExceedIt(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(2, 2)) // free tier 1 + 2 = 3 devices, 3 running
	const tries = 20
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			_, errs[i] = env.Service.Create(bg, a.Principal, device.CreateRequest{Name: fmt.Sprint("p", i), CPUCores: 1, MemoryMB: 512})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !apierr.Is(err, apierr.QuotaExceeded):
			t.Errorf("create failed with %v, want quota_exceeded", err)
		}
	}
	if ok != 3 {
		t.Fatalf("%d creates accepted, want exactly 3", ok)
	}
	q := env.Quota(t, a.ID)
	if q.Usage.Devices != 3 || q.Usage.RunningDevices != 3 || q.Usage.CPUCores != 3 || q.Usage.MemoryMB != 1536 || q.Usage.StorageGB != 24 {
		t.Fatalf("usage = %+v, want exactly three devices' worth", q.Usage)
	}
	if n := count(t, env, `SELECT count(*) FROM devices WHERE user_id = $1`, a.ID); n != 3 {
		t.Fatalf("%d devices recorded, want 3", n)
	}
}

func TestConcurrentCreatesNeverShareAPortAndAFullPoolReleasesTheQuota(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t, devicetest.Ports(41000, 41007))
	const users = 12
	accounts := make([]devicetest.Account, users)
	for i := range accounts {
		accounts[i] = env.User(t, fmt.Sprintf("user%02d", i))
	}
	errs := make([]error, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() { _, errs[i] = env.Service.Create(bg, accounts[i].Principal, small()) })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case apierr.Is(err, apierr.Unavailable):
			if q := env.Quota(t, accounts[i].ID); q.Usage != (devicetest.Usage{}) {
				t.Errorf("user refused for a full pool still holds quota %+v", q.Usage)
			}
		default:
			t.Errorf("create: %v, want success or unavailable", err)
		}
	}
	if ok != 8 {
		t.Fatalf("%d devices got a port, want all 8 of the pool", ok)
	}
	if n := count(t, env, `SELECT count(DISTINCT adb_port) FROM devices WHERE adb_port BETWEEN 41000 AND 41007`); n != 8 {
		t.Fatalf("%d distinct ports among 8 devices", n)
	}
	if n := count(t, env, `SELECT count(*) FROM device_ports`); n != 8 {
		t.Fatalf("%d port rows, want 8", n)
	}
}

func TestPlacementNeedsRoomAndSkipsDrainingNodes(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t, devicetest.Node(2, 4096))
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(10, 10))
	big := device.CreateRequest{Name: "big", CPUCores: 2, MemoryMB: 2048}
	if _, err := env.Service.Create(bg, a.Principal, big); err != nil {
		t.Fatal(err)
	}
	_, err := env.Service.Create(bg, a.Principal, big)
	wantCode(t, err, apierr.Unavailable)
	if q := env.Quota(t, a.ID); q.Usage.Devices != 1 {
		t.Fatalf("a device refused for capacity kept its quota: %+v", q.Usage)
	}
	nodes, err := env.Service.Nodes(bg)
	if err != nil || len(nodes) != 1 || nodes[0].AllocatedCPUCores != 2 || nodes[0].Devices != 1 {
		t.Fatalf("nodes = %+v, %v", nodes, err)
	}
	cpu, draining := 100, device.NodeDraining
	if _, err := env.Service.UpdateNode(bg, nodes[0].ID, device.NodeUpdate{CPUCores: &cpu, Status: &draining}); err != nil {
		t.Fatal(err)
	}
	_, err = env.Service.Create(bg, a.Principal, small())
	wantCode(t, err, apierr.Unavailable)
	if err := env.Service.RegisterNode(bg, device.NodeConfig{Name: "second", DockerHost: "tcp://10.0.0.2:2376", ADBHost: "10.0.0.2", CPUCores: 8, MemoryMB: 8192}); err != nil {
		t.Fatal(err)
	}
	d, err := env.Service.Create(bg, a.Principal, small())
	if err != nil || d.NodeName != "second" {
		t.Fatalf("create with a second node: %+v %v", d, err)
	}
	if c := env.Outbox(t, device.EventCreateRequested, d.ID); c[0]["docker_host"] != "tcp://10.0.0.2:2376" {
		t.Fatalf("command names docker host %v", c[0]["docker_host"])
	}
}

func TestDuplicateAndOutOfOrderReportsChangeNothing(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := running(t, env, a)
	t0 := time.Now().Add(time.Minute)
	crash := devicetest.Report(t, device.EventRuntimeCrashed, d.ID, t0)
	started := devicetest.Report(t, device.EventRuntimeStarted, d.ID, t0.Add(time.Second))
	env.Apply(t, crash)
	wantState(t, env, a, d.ID, device.StateError)
	env.Apply(t, started)
	wantState(t, env, a, d.ID, device.StateRunning)

	// The same crash again (a redelivery) and an older crash: no change.
	env.Apply(t, crash)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCrashed, d.ID, t0.Add(-time.Hour)))
	wantState(t, env, a, d.ID, device.StateRunning)
	if e := env.Outbox(t, device.EventError, d.ID); len(e) != 1 {
		t.Fatalf("error facts = %d, want 1", len(e))
	}
	if r := env.Outbox(t, device.EventRunning, d.ID); len(r) != 2 {
		t.Fatalf("running facts = %d, want 2", len(r))
	}
	// A report answering an older command (seq) is stale.
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, d.ID, t0.Add(time.Hour), func(r *device.RuntimeReport) { r.Seq = 0 + 0 }))
	wantState(t, env, a, d.ID, device.StateStopped) // seq 0 means "not given": applied
	if _, err := env.Service.Start(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, d.ID, t0.Add(2*time.Hour), func(r *device.RuntimeReport) { r.Seq = 1 }))
	wantState(t, env, a, d.ID, device.StateStarting)
	// A report from another node is ignored.
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, d.ID, t0.Add(3*time.Hour), func(r *device.RuntimeReport) {
		r.NodeID = "00000000-0000-4000-8000-00000000dead"
	}))
	wantState(t, env, a, d.ID, device.StateStarting)

	// After deletion nothing brings the device back.
	if _, err := env.Service.Delete(bg, a.Principal, d.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, device.EventRuntimeRemoved, d.ID, t0.Add(4*time.Hour)))
	for _, typ := range device.RuntimeReports {
		env.Apply(t, devicetest.Report(t, typ, d.ID, t0.Add(5*time.Hour)))
	}
	wantState(t, env, a, d.ID, device.StateDeleted)
	if q := env.Quota(t, a.ID); q.Usage != (devicetest.Usage{}) {
		t.Fatalf("quota after late reports = %+v", q.Usage)
	}
	if n := len(env.Outbox(t, device.EventDeleted, d.ID)); n != 1 {
		t.Fatalf("deleted facts = %d", n)
	}
	// A report for a device nobody knows is acknowledged.
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, events.NewID(), t0))
}

func TestACrashGoesToErrorAndReleasesTheSlotUntilTheRecreatedContainerRuns(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := running(t, env, a)
	t0 := time.Now().Add(time.Minute)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCrashed, d.ID, t0, func(r *device.RuntimeReport) {
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
	if e := env.Outbox(t, device.EventError, d.ID); len(e) != 1 || e[0]["reason"] != "container died (exit code 137)" {
		t.Fatalf("error facts = %v", e)
	}
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCreated, d.ID, t0.Add(time.Second), func(r *device.RuntimeReport) { r.ContainerID = "new" }))
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, d.ID, t0.Add(2*time.Second)))
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
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCrashed, d1.ID, t0))
	running(t, env, a) // takes the running slot d1 gave back
	// The runtime recreated d1's container: it runs, but there is no slot.
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, d1.ID, t0.Add(time.Second)))
	got := wantState(t, env, a, d1.ID, device.StateStopping)
	if got.StopReason != device.ReasonQuotaExceeded || got.RunningSince != nil {
		t.Fatalf("over-limit device = %+v", got)
	}
	if c := env.Outbox(t, device.EventStopRequested, d1.ID); len(c) != 1 || c[0]["reason"] != device.ReasonQuotaExceeded {
		t.Fatalf("stop commands = %v", c)
	}
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, d1.ID, t0.Add(2*time.Second)))
	wantState(t, env, a, d1.ID, device.StateStopped)
	if r, s := env.Outbox(t, device.EventRunning, d1.ID), env.Outbox(t, device.EventStopped, d1.ID); len(r) != 1 || len(s) != 0 {
		t.Fatalf("facts of d1: %d running, %d stopped; want the first interval only (closed by its error)", len(r), len(s))
	}
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 1 {
		t.Fatalf("usage = %+v", q.Usage)
	}
}

func TestStartIsRefusedAtTheRunningDevicesLimit(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(1, 0)) // 2 devices, 1 running
	d1 := running(t, env, a)
	if _, err := env.Service.Stop(bg, a.Principal, d1.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, d1.ID, time.Now().Add(time.Minute)))
	d2 := running(t, env, a)
	_, err := env.Service.Start(bg, a.Principal, d1.ID)
	wantCode(t, err, apierr.QuotaExceeded)
	wantState(t, env, a, d1.ID, device.StateStopped)
	if c := env.Outbox(t, device.EventStartRequested, d1.ID); len(c) != 0 {
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
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, d2.ID, time.Now().Add(time.Minute)))
	if _, err := env.Service.Start(bg, a.Principal, d1.ID); err != nil {
		t.Fatalf("start after a slot freed: %v", err)
	}
}

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
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, stopped.ID, now.Add(time.Minute)))
	creating := create(t, env, a)
	failed := running(t, env, a)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCrashed, failed.ID, now.Add(time.Minute)))
	other := running(t, env, b)

	ev, err := events.New(bg, device.EventBalanceExhausted, "/cloudphone/billing/test", a.ID,
		device.BalanceExhausted{SchemaVersion: 1, UserID: a.ID, Balance: 0, Currency: "CNY", At: time.Now()})
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
		if c := env.Outbox(t, device.EventStopRequested, d.ID); len(c) != 1 || c[0]["reason"] != device.ReasonInsufficientFunds {
			t.Fatalf("stop commands of %s = %v", d.ID, c)
		}
	}
	wantState(t, env, a, failed.ID, device.StateStopped)
	for _, d := range []device.Device{r1, r2} {
		got := wantState(t, env, a, d.ID, device.StateStopping)
		if got.StopReason != device.ReasonInsufficientFunds {
			t.Fatalf("stop reason = %q", got.StopReason)
		}
		env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, d.ID, now.Add(time.Hour)))
		if s := env.Outbox(t, device.EventStopped, d.ID); len(s) != 1 || s[0]["reason"] != device.ReasonInsufficientFunds {
			t.Fatalf("stopped facts of %s = %v", d.ID, s)
		}
	}
	// The device being created is created, started and stopped by the
	// runtime in that order, and never counted as running.
	wantState(t, env, a, creating.ID, device.StateStopping)
	env.Apply(t, devicetest.Report(t, device.EventRuntimeCreated, creating.ID, now.Add(time.Hour)))
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStarted, creating.ID, now.Add(time.Hour+time.Second)))
	env.Apply(t, devicetest.Report(t, device.EventRuntimeStopped, creating.ID, now.Add(time.Hour+2*time.Second)))
	got := wantState(t, env, a, creating.ID, device.StateStopped)
	if got.ContainerID == "" || len(env.Outbox(t, device.EventRunning, creating.ID)) != 0 {
		t.Fatalf("device stopped while being created: %+v, running facts %v", got, env.Outbox(t, device.EventRunning, creating.ID))
	}
	wantState(t, env, a, stopped.ID, device.StateStopped)
	wantState(t, env, b, other.ID, device.StateRunning)
	if q := env.Quota(t, a.ID); q.Usage.RunningDevices != 0 {
		t.Fatalf("usage after the stops = %+v", q.Usage)
	}
	if _, err := env.Service.Start(bg, a.Principal, creating.ID); err != nil {
		t.Fatal(err)
	}
	if c := env.Outbox(t, device.EventStartRequested, creating.ID); len(c) != 1 {
		t.Fatalf("start of a device created while stopping sent %v", c)
	}
}

func TestConnectionGivesTheADBAddressAndASignedTicket(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := running(t, env, a)
	c, err := env.Service.Connect(bg, a.Principal, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.ADB != fmt.Sprintf("127.0.0.1:%d", d.ADBPort) || time.Until(c.ExpiresAt) > 5*time.Minute || time.Until(c.ExpiresAt) < 4*time.Minute {
		t.Fatalf("connection = %+v", c)
	}
	tk, err := env.Tickets.Verify(c.Ticket, time.Now())
	if err != nil || tk.DeviceID != d.ID || tk.UserID != a.ID || tk.ADB != c.ADB {
		t.Fatalf("ticket = %+v, %v", tk, err)
	}
	if _, err := env.Tickets.Verify(c.Ticket, time.Now().Add(6*time.Minute)); err == nil {
		t.Fatal("an expired ticket verified")
	}
	if _, err := env.Tickets.Verify(c.Ticket[:len(c.Ticket)-2]+"AA", time.Now()); err == nil {
		t.Fatal("a forged ticket verified")
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

	var q device.QuotaRevoked
	q.SchemaVersion, q.UserID, q.Limits.MaxRunningDevices = 1, a.ID, 1
	ev, err := events.New(bg, device.EventQuotaRevoked, "/cloudphone/user/test", "grant-1", q)
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
		if got.StopReason != device.ReasonQuotaReduced {
			t.Fatalf("stop reason = %q", got.StopReason)
		}
		if c := env.Outbox(t, device.EventStopRequested, d.ID); len(c) != 1 || c[0]["reason"] != device.ReasonQuotaReduced {
			t.Fatalf("stop commands of %s = %v", d.ID, c)
		}
	}
}
