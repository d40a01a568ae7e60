package deviceruntime_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

func TestCreateRunsAContainerWithTheDevicesLimitsLabelsAndPublishedADBPort(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("create")
	cmd := b.createCommand(id)
	cmd.CPUCores, cmd.MemoryMB, cmd.Seq = 1.5, 48, 7
	create := command(t, deviceevents.EventCreateRequested, cmd)
	b.send(b.rt, create)

	_, created := b.waitReports(id, deviceevents.EventRuntimeCreated, 1, 30*time.Second)
	startedEv, started := b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
	if created.ContainerID == "" || started.ContainerID != created.ContainerID || started.NodeID != "local" ||
		started.Op != deviceruntime.OpCreate || started.Seq != 7 {
		t.Fatalf("reports do not name the container: created %+v, started %+v", created, started)
	}
	if startedEv.Source() != deviceruntime.Source || startedEv.Subject() != id ||
		startedEv.Extensions()[events.ExtCausation] != create.ID() ||
		startedEv.Extensions()[events.ExtCorrelation] != events.CorrelationOf(create) {
		t.Fatalf("started report is not linked to its command: %v", startedEv)
	}

	ci := b.inspect(id)
	if !ci.State.Running || ci.ID != started.ContainerID {
		t.Fatalf("container %s running=%v, reported %s", ci.ID, ci.State.Running, started.ContainerID)
	}
	if ci.HostConfig.NanoCPUs != 1_500_000_000 || ci.HostConfig.Memory != 48<<20 {
		t.Fatalf("limits NanoCPUs=%d Memory=%d, want 1.5e9 and 48 MiB", ci.HostConfig.NanoCPUs, ci.HostConfig.Memory)
	}
	if ci.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Fatalf("restart policy %q, want no", ci.HostConfig.RestartPolicy.Name)
	}
	for k, want := range map[string]string{
		deviceruntime.LabelManaged: "true", deviceruntime.LabelDeviceID: id, deviceruntime.LabelUserID: cmd.UserID,
		testLabel: b.run, deviceruntime.LabelInstance: b.run,
	} {
		if got := ci.Config.Labels[k]; got != want {
			t.Fatalf("label %s = %q, want %q", k, got, want)
		}
	}
	if ci.Config.Image != standinimage.Tag || ci.Name != "/"+deviceruntime.ContainerName(id) {
		t.Fatalf("image %s name %s", ci.Config.Image, ci.Name)
	}
	bind := ci.HostConfig.PortBindings[nat.Port("5555/tcp")]
	if len(bind) != 1 || bind[0].HostIP != "127.0.0.1" || bind[0].HostPort != strconv.Itoa(cmd.ADBPort) {
		t.Fatalf("ADB port binding %+v, want 127.0.0.1:%d", bind, cmd.ADBPort)
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cmd.ADBPort))
	if err := deviceruntime.ADBHandshake(context.Background(), addr, 2*time.Second); err != nil {
		t.Fatalf("the ADB handshake on %s failed: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	phone, err := adb.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	res, err := phone.Shell(ctx, "getprop sys.boot_completed")
	if err != nil || res.ExitCode != 0 || string(res.Stdout) != "1\n" {
		t.Fatalf("the phone answered getprop sys.boot_completed with %q (exit %d), %v", res.Stdout, res.ExitCode, err)
	}
}

func TestStopStartRestartAndDeleteReflectInDocker(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("lifecycle")
	cmd := b.createCommand(id)
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, cmd))
	b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
	short := deviceevents.Command{DeviceID: id, NodeID: "local"}

	b.send(b.rt, command(t, deviceevents.EventStopRequested, short))
	_, stopped := b.waitReports(id, deviceevents.EventRuntimeStopped, 1, 30*time.Second)
	if ci := b.inspect(id); ci.State.Running {
		t.Fatal("the container still runs after the stopped report")
	}
	if stopped.ExitCode == nil {
		t.Fatalf("stopped report without an exit code: %+v", stopped)
	}

	b.send(b.rt, command(t, deviceevents.EventStartRequested, short))
	b.waitReports(id, deviceevents.EventRuntimeStarted, 2, 30*time.Second)
	before := b.inspect(id)
	if !before.State.Running {
		t.Fatal("the container does not run after the started report")
	}

	b.send(b.rt, command(t, deviceevents.EventRestartRequested, short))
	b.waitReports(id, deviceevents.EventRuntimeRestarted, 1, 30*time.Second)
	after := b.inspect(id)
	if !after.State.Running || after.State.StartedAt == before.State.StartedAt || after.ID != before.ID {
		t.Fatalf("restart: running=%v started %s → %s, id %s → %s", after.State.Running,
			before.State.StartedAt, after.State.StartedAt, before.ID, after.ID)
	}

	b.send(b.rt, command(t, deviceevents.EventDeleteRequested, short))
	b.waitReports(id, deviceevents.EventRuntimeRemoved, 1, 30*time.Second)
	if left := b.containers(id); len(left) != 0 {
		t.Fatalf("delete left %d containers", len(left))
	}
	// Stopping a deleted device's container must not count as a crash.
	time.Sleep(300 * time.Millisecond)
	for _, e := range b.reports(id) {
		if e.Type() == deviceevents.EventRuntimeCrashed || e.Type() == deviceevents.EventRuntimeFailed {
			t.Fatalf("an ordered stop, restart or delete was reported as %s: %s", e.Type(), b.describe(id))
		}
	}
	// A create after the delete is late and does nothing.
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, cmd))
	_, failed := b.waitReports(id, deviceevents.EventRuntimeFailed, 1, 30*time.Second)
	if !strings.Contains(failed.Reason, "deleted") || len(b.containers(id)) != 0 {
		t.Fatalf("late create: %+v, %d containers", failed, len(b.containers(id)))
	}
}

func TestRepeatedCreateKeepsOneContainer(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("repeat")
	cmd := b.createCommand(id)
	first := command(t, deviceevents.EventCreateRequested, cmd)
	b.send(b.rt, first)
	b.send(b.rt, first) // the same event delivered twice: queued once
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, cmd))
	_, s1 := b.waitReports(id, deviceevents.EventRuntimeStarted, 2, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := len(b.containers(id)); n != 1 {
		t.Fatalf("%d containers for one device", n)
	}
	var queued int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM runtime_commands WHERE device_id = $1`, id).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 2 {
		t.Fatalf("%d commands queued, want 2 (a redelivered event is queued once)", queued)
	}
	created := 0
	for _, e := range b.reports(id) {
		if e.Type() == deviceevents.EventRuntimeCreated {
			created++
		}
	}
	if created != 2 || s1.ContainerID != b.inspect(id).ID {
		t.Fatalf("want each create answered with created and started on the same container: %s", b.describe(id))
	}
}

func TestKilledContainerIsReportedCrashedWithinSecondsAndRecreatedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("crash")
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(id)))
	_, started := b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)

	killed := time.Now()
	if err := b.docker.ContainerKill(context.Background(), started.ContainerID, "KILL"); err != nil {
		t.Fatal(err)
	}
	_, crashed := b.waitReports(id, deviceevents.EventRuntimeCrashed, 1, 5*time.Second)
	t.Logf("crash reported %s after the kill", time.Since(killed).Round(time.Millisecond))
	if crashed.Op != deviceruntime.OpWatch || crashed.ExitCode == nil || *crashed.ExitCode != 137 || crashed.ContainerID != started.ContainerID {
		t.Fatalf("crashed report %+v, want op watch, exit code 137, the killed container", crashed)
	}

	p, err := b.rt.Reconcile(context.Background())
	if err != nil || p.Recreated != 1 || p.Crashed != 0 || len(p.Errors) > 0 {
		t.Fatalf("reconcile: %+v, %v; want one recreation and no second crash report", p, err)
	}
	_, again := b.waitReports(id, deviceevents.EventRuntimeStarted, 2, time.Second)
	if again.Op != deviceruntime.OpRecreate || again.ContainerID == started.ContainerID {
		t.Fatalf("after reconcile: %+v", again)
	}
	if ci := b.inspect(id); !ci.State.Running || ci.ID != again.ContainerID || len(b.containers(id)) != 1 {
		t.Fatalf("the recreated container: running=%v id=%s, %d containers", ci.State.Running, ci.ID, len(b.containers(id)))
	}

	// A second crash is reported too, but the device is not recreated again.
	if err := b.docker.ContainerKill(context.Background(), again.ContainerID, "KILL"); err != nil {
		t.Fatal(err)
	}
	b.waitReports(id, deviceevents.EventRuntimeCrashed, 2, 5*time.Second)
	p, err = b.rt.Reconcile(context.Background())
	if err != nil || p.Recreated != 0 || p.Crashed != 0 {
		t.Fatalf("second reconcile: %+v, %v; want no recreation", p, err)
	}
	if ci := b.inspect(id); ci.State.Running {
		t.Fatal("a device recreated once was recreated again")
	}

	if c, r := testutil.ToFloat64(b.metrics.PhoneCrashes), testutil.ToFloat64(b.metrics.PhoneRecreations); c != 2 || r != 1 {
		t.Fatalf("cloudphone_phone_crashes_total %v, cloudphone_phone_recreations_total %v; want 2 and 1", c, r)
	}

	// A start command clears the error: the device runs again.
	b.send(b.rt, command(t, deviceevents.EventStartRequested, deviceevents.Command{DeviceID: id}))
	b.waitReports(id, deviceevents.EventRuntimeStarted, 3, 30*time.Second)
}

func TestReconcileReportsAMissingContainerAndRecreatesIt(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("missing")
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(id)))
	_, started := b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
	// Removed behind the runtime's back (its death is reported by the watch,
	// or by the pass when it comes first).
	if err := b.docker.ContainerRemove(context.Background(), started.ContainerID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	b.waitReports(id, deviceevents.EventRuntimeCrashed, 1, 5*time.Second)
	if _, err := b.rt.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, again := b.waitReports(id, deviceevents.EventRuntimeStarted, 2, time.Second)
	if again.Op != deviceruntime.OpRecreate || !b.inspect(id).State.Running {
		t.Fatalf("not recreated: %s", b.describe(id))
	}
}

func TestReconcileRemovesAManagedContainerWithNoDeviceAndLeavesOtherInstancesAlone(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	run := func(id, instance string) string {
		resp, err := b.docker.ContainerCreate(ctx, &container.Config{Image: standinimage.Tag, Labels: map[string]string{
			deviceruntime.LabelManaged: "true", deviceruntime.LabelDeviceID: id, testLabel: b.run, deviceruntime.LabelInstance: instance,
		}}, &container.HostConfig{Resources: container.Resources{Memory: 16 << 20}}, nil, nil, deviceruntime.ContainerName(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		return resp.ID
	}
	// The containers exist before the runtime that judges them starts: a
	// runtime already running might remove the orphan between its create
	// and its start.
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.rt.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	ghost := b.deviceID("ghost")
	ghostID := run(ghost, b.run)
	foreign := b.deviceID("foreign")
	run(foreign, b.run+"-other-platform")
	b.rt = b.start()

	// The runtime's own first pass (at Start) may get to the orphan before
	// this one does; either way it is removed once and reported once.
	p, err := b.rt.Reconcile(ctx)
	if err != nil || p.Removed > 1 || p.Containers > 1 {
		t.Fatalf("reconcile: %+v, %v; want at most the orphan seen and removed", p, err)
	}
	if n := len(b.containers(ghost)); n != 0 {
		t.Fatalf("the orphan container is still there (%d)", n)
	}
	_, removed := b.waitReports(ghost, deviceevents.EventRuntimeRemoved, 1, 5*time.Second)
	if removed.Op != deviceruntime.OpReconcile || removed.ContainerID != ghostID {
		t.Fatalf("removed report %+v", removed)
	}
	if n := len(slices.DeleteFunc(b.reports(ghost), func(e event.Event) bool { return e.Type() != deviceevents.EventRuntimeRemoved })); n != 1 {
		t.Fatalf("the orphan was reported removed %d times, want once", n)
	}
	if n := len(b.containers(foreign)); n != 1 || len(b.reports(foreign)) != 0 {
		t.Fatalf("another instance's container was touched: %d left, reports %s", n, b.describe(foreign))
	}
}

func TestRuntimeRestartedDuringCreationsLeavesNoDuplicatesAndFinishesEveryDevice(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *deviceruntime.Config) { c.Workers = 2 })
	var ids []string
	for i := range 10 {
		id := b.deviceID(fmt.Sprintf("burst%02d", i))
		ids = append(ids, id)
		b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(id)))
	}
	// Let the first runtime get into its work, then end it abruptly: the
	// commands in flight are aborted mid-way.
	b.waitReports(ids[0], deviceevents.EventRuntimeStarted, 1, 30*time.Second)
	aborted, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.rt.Stop(aborted); err != nil {
		t.Fatal(err)
	}
	var pending int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM runtime_commands WHERE status = 'pending'`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of 10 creates still queued when the first runtime stopped", pending)
	if pending == 0 {
		t.Fatal("every create finished before the stop; the test proves nothing")
	}

	second := b.start()
	for _, id := range ids {
		deadline := time.Now().Add(60 * time.Second)
		for {
			var outcome string
			for _, e := range b.reports(id) {
				if e.Type() == deviceevents.EventRuntimeStarted || e.Type() == deviceevents.EventRuntimeFailed {
					outcome = e.Type()
				}
			}
			if outcome == deviceevents.EventRuntimeStarted {
				break
			}
			if outcome != "" || time.Now().After(deadline) {
				t.Fatalf("device %s: %s", id, b.describe(id))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := len(b.containers(id)); n != 1 {
			t.Fatalf("device %s has %d containers", id, n)
		}
	}
	if p, err := second.Reconcile(context.Background()); err != nil || p.Removed+p.Recreated+p.Crashed != 0 || p.Containers != 10 {
		t.Fatalf("reconcile after the restart: %+v, %v", p, err)
	}
}

func TestCreateWithAnImageMissingFromTheEngineFailsWithTheReason(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("noimage")
	cmd := b.createCommand(id)
	cmd.Image = missingImage
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, cmd))
	_, failed := b.waitReports(id, deviceevents.EventRuntimeFailed, 1, 30*time.Second)
	for _, want := range []string{"cloudphone/not-built-here:latest not found on the Docker engine", "make phone-standin", "CLOUDPHONE_DEVICE_IMAGE=cloudphone/phone-standin:latest"} {
		if !strings.Contains(failed.Reason, want) {
			t.Fatalf("reason %q does not say %q", failed.Reason, want)
		}
	}
	if failed.Op != deviceruntime.OpCreate || len(b.containers(id)) != 0 {
		t.Fatalf("failed %+v; %d containers", failed, len(b.containers(id)))
	}
}

func TestUnreachableEngineIsRetriedThenReportedFailedAndTheRuntimeKeepsWorking(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("noengine")
	cmd := b.createCommand(id)
	cmd.DockerHost = "unix:///nonexistent/docker.sock"
	b.registerNode("gone", cmd.DockerHost)
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, cmd))
	_, failed := b.waitReports(id, deviceevents.EventRuntimeFailed, 1, 30*time.Second)
	if !strings.Contains(failed.Reason, "/nonexistent/docker.sock") || !strings.Contains(failed.Reason, "gave up after 3 attempts") {
		t.Fatalf("reason %q does not name the engine and the attempts", failed.Reason)
	}
	var attempts int
	if err := b.pool.QueryRow(context.Background(), `SELECT attempts FROM runtime_commands WHERE device_id = $1`, id).Scan(&attempts); err != nil || attempts != 3 {
		t.Fatalf("attempts %d, %v", attempts, err)
	}
	ok := b.deviceID("afterwards")
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(ok)))
	b.waitReports(ok, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
}

func TestHandleQueuesDurablyAndRefusesUnusableCommandsPermanently(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if err := b.rt.Stop(context.Background()); err != nil { // nothing works the queue
		t.Fatal(err)
	}
	id := b.deviceID("durable")
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(id)))
	var status string
	if err := b.pool.QueryRow(context.Background(), `SELECT status FROM runtime_commands WHERE device_id = $1`, id).Scan(&status); err != nil || status != "pending" {
		t.Fatalf("the acknowledged command is %q, %v; want pending", status, err)
	}
	cases := map[string]deviceevents.Command{
		"bad device id": {DeviceID: "../etc", UserID: "u", CPUCores: 1, MemoryMB: 64, ADBPort: 40000},
		"no user":       {DeviceID: "d1", CPUCores: 1, MemoryMB: 64, ADBPort: 40000},
		"no cpu":        {DeviceID: "d1", UserID: "u", MemoryMB: 64, ADBPort: 40000},
		"no memory":     {DeviceID: "d1", UserID: "u", CPUCores: 1, ADBPort: 40000},
		"no port":       {DeviceID: "d1", UserID: "u", CPUCores: 1, MemoryMB: 64},
	}
	for name, c := range cases {
		e := command(t, deviceevents.EventCreateRequested, c)
		_, err := b.rt.Handle(context.Background(), e)
		if st := function.EventStatus(err); st != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d (%v), want 422", name, st, err)
		}
	}
	// The next runtime works the queue.
	b.start()
	b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
}

func TestStartWarnsWhenTheConfiguredImageIsMissingFromTheEngine(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var logs syncBuffer
	rt, err := deviceruntime.New(b.pool, deviceruntime.Config{Image: "cloudphone/not-built-here:latest", Instance: b.run,
		Labels: testLabel + "=" + b.run, ReconcileInterval: time.Hour}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background(), nil); err != nil {
		t.Fatalf("a missing image must not stop the runtime: %v", err)
	}
	defer rt.Stop(context.Background())
	for _, want := range []string{`"level":"WARN"`, "image cloudphone/not-built-here:latest not found on the Docker engine at unix://",
		"make phone-standin", "CLOUDPHONE_DEVICE_IMAGE=cloudphone/phone-standin:latest"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the start-up log does not say %q:\n%s", want, logs.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A command delivered after a newer one for the same device (by seq) is
// stale: carrying it out would undo the newer one, so the runtime skips it.
// Here the stop (seq 2) overtakes the create (seq 1): no container is made.
func TestAStaleCommandDeliveredLateIsSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.deviceID("stale")
	create := b.createCommand(id)
	create.Seq = 1
	stop := deviceevents.Command{DeviceID: id, UserID: create.UserID, NodeID: create.NodeID, Seq: 2}
	b.send(b.rt, command(t, deviceevents.EventStopRequested, stop))
	b.waitReports(id, deviceevents.EventRuntimeStopped, 1, 10*time.Second)
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, create))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pending int
		if err := b.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM runtime_commands WHERE device_id = $1 AND status = 'pending'`, id).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the late create was never processed: %s", b.describe(id))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(b.containers(id)); n != 0 {
		t.Fatalf("a stale create made %d containers: %s", n, b.describe(id))
	}
	for _, e := range b.reports(id) {
		if e.Type() == deviceevents.EventRuntimeStarted || e.Type() == deviceevents.EventRuntimeCreated {
			t.Fatalf("a stale create was reported as carried out: %s", b.describe(id))
		}
	}
}
