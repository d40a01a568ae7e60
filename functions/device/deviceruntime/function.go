package deviceruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/workqueue"
)

// Trace is how one command went, for benchmarks and metrics: when it was
// received and claimed, how long its Docker calls and the wait for the ADB
// handshake took, and when its outcome committed.
type Trace struct {
	CommandID int64
	Op        string
	DeviceID  string
	Received  time.Time // the row's received_at (database clock)
	Claimed   time.Time
	Docker    time.Duration // inside Docker API calls
	ADBWait   time.Duration // waiting for the container's ADB handshake
	Committed time.Time
	Reports   []string // the report types committed
	Retried   bool     // postponed after a failure that may pass
}

// Option tunes a Function.
type Option func(*Function)

// WithMetrics counts the crashes the function finds and the containers it
// recreates in m (cloudphone_phone_crashes_total,
// cloudphone_phone_recreations_total) and registers the per-node metrics on
// m's registry (see newNodeMetrics).
func WithMetrics(m *metrics.Metrics) Option {
	return func(f *Function) {
		f.metrics = m
		f.nodeMetrics = newNodeMetrics(m.Registry)
	}
}

// WithTrace calls fn after each command's outcome committed, from the worker
// that ran it (fn must be quick and safe for concurrent use).
func WithTrace(fn func(Trace)) Option { return func(f *Function) { f.trace = fn } }

// WithReportHook calls fn with every report after it committed to the
// outbox (fn must be quick and safe for concurrent use).
func WithReportHook(fn func(event.Event)) Option { return func(f *Function) { f.onReport = fn } }

// Function is device-runtime. Handle queues commands; Start runs the queue
// workers, the Docker events watch and the reconcile loop until Stop. Safe for
// concurrent use.
type Function struct {
	pool     *pgxpool.Pool
	cfg      Config
	caps     []string        // capabilities of unprivileged phones
	images   map[string]bool // the images commands may name
	log      *slog.Logger
	metrics  *metrics.Metrics // optional
	engines  *engines
	trace    func(Trace)
	onReport func(event.Event)
	http     *http.Client // fetches APKs from their presigned URLs
	wake     chan struct{}

	health      healthCounts
	nodeMetrics *nodeMetrics // nil without WithMetrics

	// passing serializes reconcile passes in this process: two passes at
	// once would both act on (and report) the same container.
	passing sync.Mutex

	mu          sync.Mutex
	started     bool
	claimsCtx   context.Context    // the loops' context
	stopClaims  context.CancelFunc // ends the loops and the claiming of commands
	abortWork   context.CancelFunc // aborts commands in flight
	loops       sync.WaitGroup
	watching    map[string]bool // engines with an events watch
	reconcileCh chan struct{}
}

// New returns the runtime over pool (the device context's database with
// Migrations and outbox.Migrations applied). It fails when pool or log is nil.
func New(pool *pgxpool.Pool, cfg Config, log *slog.Logger, opts ...Option) (*Function, error) {
	if pool == nil || log == nil {
		return nil, errors.New("deviceruntime: New needs a pool and a logger")
	}
	cfg = cfg.withDefaults()
	labels, err := cfg.extraLabels()
	if err != nil {
		return nil, err
	}
	caps, err := cfg.capabilities()
	if err != nil {
		return nil, err
	}
	images, err := cfg.allowedImages()
	if err != nil {
		return nil, err
	}
	f := &Function{pool: pool, cfg: cfg, caps: caps, images: images, log: log, engines: newEngines(cfg, labels, log),
		wake: make(chan struct{}, 1), watching: map[string]bool{}, reconcileCh: make(chan struct{}, 1),
		health: healthCounts{n: map[string]int{}}, http: downloadClient()}
	for _, o := range opts {
		o(f)
	}
	return f, nil
}

// downloadClient is the HTTP client of APK downloads: a store that does not
// answer within 30 s is retried later; the body's time is bounded by
// Config.InstallTimeout.
func downloadClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: tr}
}

var validDeviceID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

var opOf = map[string]string{
	deviceevents.EventCreateRequested: OpCreate, deviceevents.EventStartRequested: OpStart, deviceevents.EventStopRequested: OpStop,
	deviceevents.EventRestartRequested: OpRestart, deviceevents.EventDeleteRequested: OpDelete,
	deviceevents.EventAppInstallRequested: OpInstall, deviceevents.EventAppUninstallRequested: OpUninstall,
}

// Handle records a device command in the runtime's queue and acknowledges
// it; the work happens later, in order per device. A repeated delivery of
// the same event (source and id) is acknowledged and queued once. A command
// whose data cannot be used is refused permanently; a database failure is
// retried.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	op, ok := opOf[e.Type()]
	if !ok {
		return nil, function.Permanent(fmt.Errorf("%s does not handle %s", Name, e.Type()))
	}
	var cmd deviceevents.Command
	if err := e.DataAs(&cmd); err != nil {
		return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
	}
	err := validate(op, cmd)
	if err == nil && (op == OpInstall || op == OpUninstall) {
		_, err = f.appCommand(op, e)
	}
	if err != nil {
		return nil, function.Permanent(fmt.Errorf("%s %s: %w", e.Type(), e.ID(), err))
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, function.Permanent(fmt.Errorf("encode %s: %w", e.ID(), err))
	}
	if _, err := f.pool.Exec(ctx, enqueue, e.Source(), e.ID(), cmd.DeviceID, op, raw); err != nil {
		return nil, fmt.Errorf("queue %s for device %s: %w", op, cmd.DeviceID, err)
	}
	f.kick()
	return nil, nil
}

func validate(op string, c deviceevents.Command) error {
	if !validDeviceID.MatchString(c.DeviceID) {
		return fmt.Errorf("device_id %q is not a usable id", c.DeviceID)
	}
	if op != OpCreate {
		return nil
	}
	switch {
	case c.UserID == "":
		return errors.New("create needs user_id")
	case c.CPUCores <= 0 || c.CPUCores > 256:
		return errors.New("create needs cpu_cores in (0, 256]")
	case c.MemoryMB < 6 || c.MemoryMB > 1<<20:
		return errors.New("create needs memory_mb of at least 6")
	case c.ADBPort <= 0 || c.ADBPort > 65535:
		return errors.New("create needs adb_port in 1..65535")
	}
	return nil
}

// kick wakes a worker.
func (f *Function) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Start launches the queue workers, the events watch of the default engine
// and the reconcile loop; it returns at once. It warns when the configured
// image is missing from the default engine or the engine cannot be reached;
// neither stops the runtime, which reports failures and retries.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return errors.New("device-runtime already started")
	}
	f.started = true
	claims, stopClaims := context.WithCancel(context.Background())
	work, abortWork := context.WithCancel(context.Background())
	f.claimsCtx, f.stopClaims, f.abortWork = claims, stopClaims, abortWork
	f.checkImage(ctx)
	if _, err := f.loadNodes(ctx); err != nil {
		f.log.Warn("device-runtime: cannot read the nodes yet", "err", err)
	}
	for range f.cfg.Workers {
		f.loops.Go(func() { f.workLoop(claims, work) })
	}
	f.watchLocked(claims, "")
	f.loops.Go(func() { f.reconcileLoop(claims) })
	f.loops.Go(func() { f.healthLoop(claims) })
	return nil
}

// checkImage logs whether the default engine has the configured image.
func (f *Function) checkImage(ctx context.Context) {
	c, err := f.engines.client("", "")
	if err != nil {
		f.log.Warn("device-runtime: no Docker client", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = c.ImageInspect(ctx, f.cfg.Image)
	switch {
	case err == nil:
		f.log.Info("device-runtime: phone image present", "image", f.cfg.Image, "docker_host", hostOf(c))
	case cerrdefs.IsNotFound(err):
		f.log.Warn(errImageMissing{image: f.cfg.Image, host: hostOf(c)}.Error()+"; device creates will fail until it is there",
			"image", f.cfg.Image, "docker_host", hostOf(c))
	default:
		f.log.Warn("device-runtime: the Docker engine cannot be reached; commands will fail and be retried",
			"docker_host", hostOf(c), "err", err)
	}
}

// Stop stops claiming commands, lets those in flight finish until ctx ends
// (then aborts them: they stay queued and are redone by the next runtime),
// and ends the watch and the reconcile loop.
func (f *Function) Stop(ctx context.Context) error {
	f.mu.Lock()
	if !f.started || f.stopClaims == nil {
		f.mu.Unlock()
		return nil
	}
	stopClaims, abortWork := f.stopClaims, f.abortWork
	f.stopClaims = nil
	f.mu.Unlock()
	stopClaims()
	done := make(chan struct{})
	go func() { f.loops.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		abortWork()
		<-done
	}
	abortWork()
	f.engines.close()
	return nil
}

// Ready reports whether the runtime's database answers.
func (f *Function) Ready(ctx context.Context) (bool, error) {
	if err := f.pool.Ping(ctx); err != nil {
		return false, nil
	}
	return true, nil
}

func (f *Function) workLoop(claims, work context.Context) {
	for claims.Err() == nil {
		found, err := f.processOne(work)
		if err != nil && work.Err() == nil {
			f.log.Error("device-runtime: command processing failed", "err", err)
		}
		if found && err == nil {
			continue
		}
		select {
		case <-claims.Done():
			return
		case <-f.wake:
		case <-time.After(f.cfg.PollInterval):
		}
	}
}

// processOne runs the next due command in one transaction with its outcome.
func (f *Function) processOne(ctx context.Context) (found bool, err error) {
	var tr Trace
	var reports []event.Event
	err = db.WithTx(ctx, f.pool, func(tx pgx.Tx) error {
		q, err := claim(ctx, tx)
		if err != nil || q == nil {
			return err
		}
		found = true
		tr = Trace{CommandID: q.ID, Op: q.Op, DeviceID: q.Cmd.DeviceID, Received: q.ReceivedAt, Claimed: time.Now()}
		dev, err := lockDevice(ctx, tx, q.Cmd.DeviceID)
		if err != nil {
			return err
		}
		cctx := events.WithCause(ctx, q.Event)
		o := f.execute(cctx, tx, q, dev)
		tr.Docker, tr.ADBWait = o.docker, o.adbWait
		if ctx.Err() != nil {
			return ctx.Err() // shutting down: the command stays queued
		}
		log := f.log.With("device_id", q.Cmd.DeviceID, "op", q.Op, "command_id", q.ID, "event_id", q.Event.ID())
		status, lastErr := "done", ""
		if o.retry != nil {
			if q.Attempts+1 < f.cfg.MaxAttempts {
				wait, err := retryLater(ctx, tx, f.retries(), q.ID, q.Attempts+1, o.retry)
				if err != nil {
					return err
				}
				log.WarnContext(cctx, "device command failed, will retry", "attempt", q.Attempts+1, "retry_in", wait.String(), "err", o.retry)
				tr.Retried = true
				return nil
			}
			if o.giveUp != nil {
				o.giveUp(o.retry)
			} else {
				d := o.dev
				if d == nil {
					d = mergeCommand(nil, q.Cmd, f.cfg.Image)
				}
				d.Observed = observedFailed
				reason := fmt.Sprintf("%v (gave up after %d attempts)", o.retry, q.Attempts+1)
				o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeFailed, d, q.Op, reason, nil))
			}
			o.failed = true
		}
		if o.failed {
			status = "failed"
			lastErr = o.reason
			if n := len(o.reports); lastErr == "" && n > 0 {
				lastErr = o.reports[n-1].reason()
			}
			log.WarnContext(cctx, "device command failed", "reason", lastErr)
		}
		if o.dev != nil {
			if err := o.dev.save(ctx, tx); err != nil {
				return err
			}
		}
		reports, err = emit(cctx, tx, o.reports)
		if err != nil {
			return err
		}
		return finish(ctx, tx, q.ID, status, lastErr)
	})
	if err != nil || !found {
		return found, err
	}
	tr.Committed = time.Now()
	f.published(reports)
	if f.trace != nil {
		for _, r := range reports {
			tr.Reports = append(tr.Reports, r.Type())
		}
		f.trace(tr)
	}
	return true, nil
}

// retries is the backoff of a command's failures that may pass: RetryBackoff
// after the first, doubling per failure up to a minute. The runtime gives up
// after MaxAttempts itself (with a failed report), so the queue parks none.
func (f *Function) retries() workqueue.Backoff {
	return workqueue.Backoff{Base: f.cfg.RetryBackoff, Max: time.Minute}
}

// emit adds the findings to the outbox within tx, as events caused by the
// event in ctx (if any).
func emit(ctx context.Context, tx pgx.Tx, fs []finding) ([]event.Event, error) {
	evs := make([]event.Event, 0, len(fs))
	for _, fd := range fs {
		var data any = fd.Data
		if fd.App != nil {
			data = fd.App
		}
		e, err := events.New(ctx, fd.Type, Source, fd.Data.DeviceID, data)
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	if err := outbox.Add(ctx, tx, evs...); err != nil {
		return nil, err
	}
	return evs, nil
}

func (f *Function) published(evs []event.Event) {
	if f.onReport == nil {
		return
	}
	for _, e := range evs {
		f.onReport(e)
	}
}

// healthCounts counts failed ADB checks in a row per device.
type healthCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *healthCounts) fail(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[id]++
	return h.n[id]
}

func (h *healthCounts) ok(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.n, id)
}

// knownHosts lists the engines of devices plus the default one.
func knownHosts(devs map[string]*device, e *engines) []string {
	hosts := []string{""}
	for _, d := range devs {
		if d.Desired == desiredDeleted {
			continue
		}
		if k := e.key(d.DockerHost); !slices.Contains(hosts, k) {
			hosts = append(hosts, k)
		}
	}
	return hosts
}
