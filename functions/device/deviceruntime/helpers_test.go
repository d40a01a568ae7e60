package deviceruntime_test

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5/pgxpool"

	devicecontext "github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// testLabel marks every container a test makes, so its cleanup finds them.
const testLabel = "cloudphone.test"

// bundle is what a runtime test needs: a database of its own, a started
// runtime over it, the Docker engine, and the label value of its containers.
type bundle struct {
	t      *testing.T
	pool   *pgxpool.Pool
	rt     *deviceruntime.Function
	cfg    deviceruntime.Config
	docker *client.Client
	run    string // value of testLabel on this test's containers
	// metrics is what every runtime of the test counts into.
	metrics *metrics.Metrics
}

// dockerClient returns a client of the machine's engine, failing the test
// when there is none (a test that needs Docker never skips).
func dockerClient(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("this test needs a Docker engine (DOCKER_HOST or the local socket): %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// setup starts a runtime on a fresh database; tweak adjusts its config.
func setup(t *testing.T, tweak func(*deviceruntime.Config)) *bundle {
	t.Helper()
	docker := dockerClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := standinimage.Ensure(ctx, docker); err != nil {
		t.Fatalf("build the phone stand-in image: %v", err)
	}
	b := &bundle{t: t, docker: docker, run: strings.ToLower(dbtest.Name(t)), metrics: metrics.New()}
	b.pool = dbtest.Database(t, outboxAndRuntime()...)
	t.Cleanup(func() { removeByLabel(t, docker, testLabel+"="+b.run) })
	b.cfg = deviceruntime.Config{
		Image:             standinimage.Tag,
		Images:            missingImage,
		Labels:            testLabel + "=" + b.run,
		Instance:          b.run,
		Workers:           4,
		PollInterval:      100 * time.Millisecond,
		ReconcileInterval: time.Hour, // tests run passes themselves
		StopTimeout:       2 * time.Second,
		ReadyTimeout:      20 * time.Second,
		MaxAttempts:       3,
		RetryBackoff:      100 * time.Millisecond,
		MaxRecreations:    1,
		HealthFailures:    2,
	}
	if tweak != nil {
		tweak(&b.cfg)
	}
	b.rt = b.start()
	return b
}

// outboxAndRuntime are the runtime's tables and those of the device context
// it reads (nodes), as in the device context's database.
func outboxAndRuntime() []db.Migrations {
	return []db.Migrations{outbox.Migrations, devicecontext.Migrations, deviceruntime.Migrations}
}

// registerNode adds a node whose engine is dockerHost, as an administrator
// does.
func (b *bundle) registerNode(name, dockerHost string) {
	b.t.Helper()
	if _, err := b.pool.Exec(context.Background(), `INSERT INTO nodes (name, docker_host, adb_host, cpu_cores, memory_mb)
		VALUES ($1, $2, '127.0.0.1', 8, 8192)`, name, dockerHost); err != nil {
		b.t.Fatal(err)
	}
}

// start starts another runtime on the bundle's database and config.
func (b *bundle) start() *deviceruntime.Function {
	b.t.Helper()
	rt, err := deviceruntime.New(b.pool, b.cfg, logging.Discard(), deviceruntime.WithMetrics(b.metrics))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := rt.Start(context.Background(), nil); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rt.Stop(ctx)
	})
	return rt
}

// removeByLabel force-removes every container carrying label (k=v), then
// the networks carrying it.
func removeByLabel(t testing.TB, c *client.Client, label string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		t.Errorf("list containers to clean up: %v", err)
		return
	}
	for _, ctr := range list {
		if err := c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil &&
			!strings.Contains(err.Error(), "No such container") && !strings.Contains(err.Error(), "already in progress") {
			t.Errorf("remove container %s: %v", ctr.ID, err)
		}
	}
	nets, err := c.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		t.Errorf("list networks to clean up: %v", err)
		return
	}
	for _, n := range nets {
		if err := c.NetworkRemove(ctx, n.ID); err != nil {
			t.Errorf("remove network %s: %v", n.Name, err)
		}
	}
}

// nextPort hands out ports from a random base, never the same twice in a
// process: a port just closed can be handed out again by the kernel before
// the engine binds it.
var nextPort atomic.Int32

// The ports are below the kernel's ephemeral range (32768–60999), where an
// outgoing connection could take one between the check and the bind.
func init() { nextPort.Store(int32(15000 + mrand.IntN(10000))) }

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		p := int(nextPort.Add(1))
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// command builds a device command event.
func command(t testing.TB, typ string, cmd deviceevents.Command) event.Event {
	t.Helper()
	cmd.SchemaVersion = deviceruntime.SchemaVersion
	e, err := events.New(context.Background(), typ, "/cloudphone/device/device-api", cmd.DeviceID, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// createCommand is a create for a new device with a free port.
func (b *bundle) createCommand(id string) deviceevents.Command {
	return deviceevents.Command{DeviceID: id, UserID: "user-" + id, NodeID: "local", CPUCores: 0.5, MemoryMB: 32,
		StorageGB: 1, ADBPort: freePort(b.t), Name: "phone " + id}
}

// send hands the command to the runtime and fails the test when it is not
// acknowledged.
func (b *bundle) send(rt *deviceruntime.Function, e event.Event) {
	b.t.Helper()
	if _, err := rt.Handle(events.WithCause(context.Background(), e), e); err != nil {
		b.t.Fatalf("%s was not acknowledged: %v", e.Type(), err)
	}
}

func (b *bundle) deviceID(name string) string {
	return name + "-" + b.run[2:10]
}

// reports returns the device's reports in the order they were committed.
func (b *bundle) reports(id string) []event.Event {
	b.t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT payload FROM outbox WHERE subject = $1 ORDER BY id`, id)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			b.t.Fatal(err)
		}
		var e event.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			b.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// waitReports waits until the device has n reports of type typ and returns
// the last one.
func (b *bundle) waitReports(id, typ string, n int, within time.Duration) (event.Event, deviceevents.RuntimeReport) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var found []event.Event
		for _, e := range b.reports(id) {
			if e.Type() == typ {
				found = append(found, e)
			}
		}
		if len(found) >= n {
			e := found[n-1]
			var r deviceevents.RuntimeReport
			if err := e.DataAs(&r); err != nil {
				b.t.Fatal(err)
			}
			return e, r
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("device %s: %d %s reports after %s, want %d; all reports: %s", id, len(found), typ, within, n, b.describe(id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bundle) describe(id string) string {
	var parts []string
	for _, e := range b.reports(id) {
		parts = append(parts, fmt.Sprintf("%s %s", strings.TrimPrefix(e.Type(), "cloudphone.device.runtime."), e.Data()))
	}
	return strings.Join(parts, "; ")
}

// containers returns the device's containers on the engine.
func (b *bundle) containers(id string) []container.Summary {
	b.t.Helper()
	list, err := b.docker.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deviceruntime.LabelDeviceID+"="+id))})
	if err != nil {
		b.t.Fatal(err)
	}
	return list
}

func (b *bundle) inspect(id string) container.InspectResponse {
	b.t.Helper()
	ci, err := b.docker.ContainerInspect(context.Background(), deviceruntime.ContainerName(id))
	if err != nil {
		b.t.Fatalf("inspect the container of %s: %v", id, err)
	}
	return ci
}

// eventOf builds an event of type typ with data, about data's device.
func eventOf(typ string, c deviceevents.AppCommand) (event.Event, error) {
	return events.New(context.Background(), typ, "/cloudphone/device/devices", c.DeviceID, c)
}

// missingImage is an allowed image that no engine has.
const missingImage = "cloudphone/not-built-here:latest"
