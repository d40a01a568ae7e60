// Package devicebench measures device-runtime on the machine's real Docker
// engine with the phone stand-in image: create-to-running latency (split into
// Docker's own time, the wait for the container's ADB handshake and the
// runtime's overhead around them), crash-detection time, and the cost of one
// reconcile pass over 200 managed containers.
//
//	go test -count=1 -run '^$' -bench . -benchtime 1x ./tests/bench/device/
//
// Needs DATABASE_URL and a Docker engine. Every container it makes carries
// the label cloudphone.bench=<run> and is removed at the end.
package devicebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	devicecontext "github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

const benchLabel = "cloudphone.bench"

var (
	runID     = randomHex(6)
	databases []string
	dbMu      sync.Mutex
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fleet != nil {
		fleet.close() // no worker may create containers during the clean-up
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err == nil {
		removeByLabel(ctx, c, benchLabel+"="+runID)
	}
	for _, name := range databases {
		dropDatabase(ctx, name)
	}
	os.Exit(code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is a runtime on a database of its own, with every report it
// commits delivered to the waiters registered for its device.
type fixture struct {
	rt     *deviceruntime.Function
	pool   *pgxpool.Pool
	docker *client.Client
	mu     sync.Mutex
	wait   map[string]chan event.Event // device → its reports
	traces map[string][]deviceruntime.Trace
}

func newFixture(b *testing.B, workers int) *fixture {
	b.Helper()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		b.Fatal("DATABASE_URL is not set: this benchmark needs Postgres")
	}
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := docker.Ping(ctx); err != nil {
		b.Fatalf("this benchmark needs a Docker engine: %v", err)
	}
	if err := standinimage.Ensure(ctx, docker); err != nil {
		b.Fatal(err)
	}
	name := "bench_device_" + randomHex(6)
	dbMu.Lock()
	databases = append(databases, name)
	dbMu.Unlock()
	// Each worker holds a connection while its Docker calls run.
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	pool, err := db.Open(ctx, base+sep+"pool_max_conns="+strconv.Itoa(workers+8), name, outbox.Migrations,
		devicecontext.Migrations, deviceruntime.Migrations) // the device context's nodes: the engines the runtime may use
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{pool: pool, docker: docker, wait: map[string]chan event.Event{}, traces: map[string][]deviceruntime.Trace{}}
	f.rt, err = deviceruntime.New(pool, deviceruntime.Config{
		Image: standinimage.Tag, Labels: benchLabel + "=" + runID, Instance: "bench-" + runID, Workers: workers,
		PollInterval: 100 * time.Millisecond, ReconcileInterval: time.Hour, StopTimeout: 2 * time.Second,
		ReadyTimeout: 30 * time.Second, MaxRecreations: 1000,
	}, logging.Discard(), deviceruntime.WithReportHook(f.deliver), deviceruntime.WithTrace(f.record))
	if err != nil {
		b.Fatal(err)
	}
	if err := f.rt.Start(ctx, nil); err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *fixture) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = f.rt.Stop(ctx)
	f.pool.Close()
}

func (f *fixture) deliver(e event.Event) {
	f.mu.Lock()
	ch := f.wait[e.Subject()]
	f.mu.Unlock()
	if ch != nil {
		ch <- e
	}
}

func (f *fixture) record(t deviceruntime.Trace) {
	f.mu.Lock()
	f.traces[t.DeviceID] = append(f.traces[t.DeviceID], t)
	f.mu.Unlock()
}

func (f *fixture) reports(id string) chan event.Event {
	ch := make(chan event.Event, 64)
	f.mu.Lock()
	f.wait[id] = ch
	f.mu.Unlock()
	return ch
}

// lastTrace returns the device's latest trace. The runtime records a trace
// after the command's outcome committed, so the report of that outcome can
// come in first: wait a little for it.
func (f *fixture) lastTrace(id string) (deviceruntime.Trace, bool) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		ts := f.traces[id]
		f.mu.Unlock()
		if len(ts) > 0 {
			return ts[len(ts)-1], true
		}
		if time.Now().After(deadline) {
			return deviceruntime.Trace{}, false
		}
		time.Sleep(time.Millisecond)
	}
}

// await returns the first report of type typ on ch.
func await(b *testing.B, ch chan event.Event, id, typ string, within time.Duration) event.Event {
	b.Helper()
	timeout := time.After(within)
	for {
		select {
		case e := <-ch:
			if e.Type() == typ {
				return e
			}
			if e.Type() == deviceevents.EventRuntimeFailed {
				b.Fatalf("device %s failed: %s", id, e.Data())
			}
		case <-timeout:
			b.Fatalf("device %s: no %s within %s", id, typ, within)
		}
	}
}

func (f *fixture) send(b *testing.B, typ string, cmd deviceevents.Command) {
	b.Helper()
	cmd.SchemaVersion = deviceruntime.SchemaVersion
	e, err := events.New(context.Background(), typ, "/cloudphone/device/bench", cmd.DeviceID, cmd)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.rt.Handle(context.Background(), e); err != nil {
		b.Fatal(err)
	}
}

// nextPort hands out ports from a random base, never the same twice.
var nextPort atomic.Int32

// The ports are below the kernel's ephemeral range (32768–60999), where an
// outgoing connection could take one between the check and the bind.
func init() { nextPort.Store(int32(26000 + mrand.IntN(5000))) }

func freePort(b *testing.B) int {
	for range 1000 {
		p := int(nextPort.Add(1))
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	b.Fatal("no free port")
	return 0
}

func createCmd(b *testing.B, id string, memoryMB int) deviceevents.Command {
	return deviceevents.Command{DeviceID: id, UserID: "bench", NodeID: "local", CPUCores: 0.1, MemoryMB: memoryMB, ADBPort: freePort(b)}
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type sample struct{ total, docker, adb, overhead, queue, ack time.Duration }

func reportSamples(b *testing.B, ss []sample) {
	var total, docker, adb, overhead, queue, ack []time.Duration
	for _, s := range ss {
		total, docker, adb = append(total, s.total), append(docker, s.docker), append(adb, s.adb)
		overhead, queue, ack = append(overhead, s.overhead), append(queue, s.queue), append(ack, s.ack)
	}
	b.ReportMetric(ms(percentile(total, 50)), "p50-total-ms")
	b.ReportMetric(ms(percentile(total, 99)), "p99-total-ms")
	b.ReportMetric(ms(percentile(docker, 50)), "p50-docker-ms")
	b.ReportMetric(ms(percentile(docker, 99)), "p99-docker-ms")
	b.ReportMetric(ms(percentile(adb, 50)), "p50-adb-wait-ms")
	b.ReportMetric(ms(percentile(adb, 99)), "p99-adb-wait-ms")
	b.ReportMetric(ms(percentile(overhead, 50)), "p50-overhead-ms")
	b.ReportMetric(ms(percentile(overhead, 99)), "p99-overhead-ms")
	b.ReportMetric(ms(percentile(queue, 50)), "p50-queue-ms")
	b.ReportMetric(ms(percentile(queue, 99)), "p99-queue-ms")
	b.ReportMetric(ms(percentile(ack, 50)), "p50-ack-ms")
	b.ReportMetric(float64(len(ss)), "samples")
}

// BenchmarkCreateToRunning times command → started report committed, for
// rounds of 20 creates issued one at a time or all at once (with as many
// workers). total = docker + adb + queue + overhead: docker is the time
// inside Docker API calls (inspect, image check, create, start), adb the wait
// for the container's ADB handshake, queue the wait between the
// acknowledgement and a worker claiming the command, overhead the runtime's
// own work around the Docker calls (the ack's insert, claim, row locks, state
// and report writes, commit). ack is Handle's own time.
func BenchmarkCreateToRunning(b *testing.B) {
	for _, conc := range []int{1, 20} {
		b.Run(fmt.Sprintf("concurrent=%d", conc), func(b *testing.B) {
			f := newFixture(b, conc)
			defer f.close()
			var ss []sample
			var mu sync.Mutex
			b.ResetTimer()
			for i := range b.N {
				var wg sync.WaitGroup
				for j := range 20 {
					id := fmt.Sprintf("c%d-%d-%d-%s", conc, i, j, randomHex(3))
					cmd := createCmd(b, id, 32)
					one := func() {
						ch := f.reports(id)
						start := time.Now()
						f.send(b, deviceevents.EventCreateRequested, cmd)
						acked := time.Now()
						await(b, ch, id, deviceevents.EventRuntimeStarted, time.Minute)
						total := time.Since(start)
						tr, ok := f.lastTrace(id)
						if !ok {
							b.Errorf("device %s: started, but its command left no trace", id)
							return
						}
						queue := max(tr.Claimed.Sub(acked), 0)
						mu.Lock()
						ss = append(ss, sample{total: total, docker: tr.Docker, adb: tr.ADBWait, queue: queue,
							ack: acked.Sub(start), overhead: total - tr.Docker - tr.ADBWait - queue})
						mu.Unlock()
					}
					if conc == 1 {
						one()
					} else {
						wg.Go(one)
					}
				}
				wg.Wait()
			}
			b.StopTimer()
			reportSamples(b, ss)
		})
	}
}

// BenchmarkCrashDetection times a phone container killed behind the
// runtime's back → its crashed report committed (the events watch), for 10
// kills per round; the device is started again between kills.
func BenchmarkCrashDetection(b *testing.B) {
	f := newFixture(b, 2)
	defer f.close()
	id := "crash-" + randomHex(4)
	ch := f.reports(id)
	f.send(b, deviceevents.EventCreateRequested, createCmd(b, id, 32))
	await(b, ch, id, deviceevents.EventRuntimeStarted, time.Minute)
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		for range 10 {
			ci, err := f.docker.ContainerInspect(context.Background(), deviceruntime.ContainerName(id))
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := f.docker.ContainerKill(context.Background(), ci.ID, "KILL"); err != nil {
				b.Fatal(err)
			}
			await(b, ch, id, deviceevents.EventRuntimeCrashed, 30*time.Second)
			took = append(took, time.Since(start))
			b.StopTimer()
			f.send(b, deviceevents.EventStartRequested, deviceevents.Command{DeviceID: id})
			await(b, ch, id, deviceevents.EventRuntimeStarted, time.Minute)
			b.StartTimer()
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(took, 50)), "p50-detect-ms")
	b.ReportMetric(ms(percentile(took, 99)), "p99-detect-ms")
	b.ReportMetric(float64(len(took)), "samples")
}

// reconcileFleet is the 200-container fleet, made once per process.
var (
	fleetOnce sync.Once
	fleet     *fixture
	fleetErr  string
	fleetMade time.Duration
)

const fleetSize = 200

// BenchmarkReconcilePass200 times reconcile passes (5 per round) over 200 running
// managed containers (16 MiB, 0.1 CPU each: 3.2 GB of limits at most, the
// stand-in uses a few MB): listing the engine, reading the devices and
// checking every container's ADB port.
func BenchmarkReconcilePass200(b *testing.B) {
	fleetOnce.Do(func() {
		start := time.Now()
		fleet = newFixtureOrNote(b, 8)
		if fleet == nil {
			return
		}
		var ids []string
		chans := map[string]chan event.Event{}
		for i := range fleetSize {
			id := fmt.Sprintf("fleet-%03d-%s", i, randomHex(3))
			ids = append(ids, id)
			chans[id] = fleet.reports(id)
			fleet.send(b, deviceevents.EventCreateRequested, createCmd(b, id, 16))
		}
		for _, id := range ids {
			await(b, chans[id], id, deviceevents.EventRuntimeStarted, 5*time.Minute)
		}
		fleetMade = time.Since(start)
	})
	if fleet == nil {
		b.Fatal(fleetErr)
	}
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		for range 5 {
			p, err := fleet.rt.Reconcile(context.Background())
			if err != nil || p.Containers != fleetSize || p.Checked != fleetSize || len(p.Errors) > 0 ||
				p.Crashed+p.Recreated+p.Removed+p.Stopped != 0 {
				b.Fatalf("pass %+v, %v", p, err)
			}
			took = append(took, p.Took)
		}
	}
	b.StopTimer()
	b.ReportMetric(fleetMade.Seconds(), "fleet-create-s")
	b.ReportMetric(ms(percentile(took, 50)), "p50-pass-ms")
	b.ReportMetric(ms(percentile(took, 99)), "p99-pass-ms")
}

func newFixtureOrNote(b *testing.B, workers int) *fixture {
	f := newFixture(b, workers)
	if f == nil {
		fleetErr = "no fixture"
	}
	return f
}

func removeByLabel(ctx context.Context, c *client.Client, label string) {
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list bench containers:", err)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, ctr := range list {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil &&
				!strings.Contains(err.Error(), "No such container") {
				fmt.Fprintln(os.Stderr, "remove bench container:", err)
			}
		})
	}
	wg.Wait()
	nets, err := c.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list bench networks:", err)
		return
	}
	for _, n := range nets {
		if err := c.NetworkRemove(ctx, n.ID); err != nil {
			fmt.Fprintln(os.Stderr, "remove bench network:", err)
		}
	}
}

func dropDatabase(ctx context.Context, name string) {
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}
