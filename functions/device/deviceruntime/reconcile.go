package deviceruntime

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/db"
)

// Pass is what one reconcile pass saw and did.
type Pass struct {
	Engines    int // engines listed
	Containers int // managed containers seen
	Devices    int // devices not deleted
	Checked    int // running containers whose ADB port was checked
	Crashed    int // devices reported crashed
	Recreated  int // containers recreated
	Removed    int // orphan containers removed
	Stopped    int // containers stopped because their device should not run
	Recovered  int // crashed devices found running and healthy again
	Took       time.Duration
	Errors     []string // engines or devices the pass could not handle
}

// commandHistory is how long finished commands are kept.
const commandHistory = 7 * 24 * time.Hour

func (f *Function) requestReconcile() {
	select {
	case f.reconcileCh <- struct{}{}:
	default:
	}
}

func (f *Function) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(f.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		p, err := f.Reconcile(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			f.log.Error("device-runtime: reconcile pass failed", "err", err)
		case len(p.Errors) > 0 || p.Crashed+p.Recreated+p.Removed+p.Stopped+p.Recovered > 0:
			f.log.Info("device-runtime: reconcile pass", "containers", p.Containers, "devices", p.Devices,
				"crashed", p.Crashed, "recreated", p.Recreated, "removed", p.Removed, "stopped", p.Stopped,
				"recovered", p.Recovered, "errors", p.Errors, "took_ms", p.Took.Milliseconds())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.reconcileCh:
		}
	}
}

type engineView struct {
	client     *client.Client
	byDevice   map[string]container.Summary
	containers []container.Summary
}

// Reconcile runs one pass: it compares every engine's managed containers
// with the devices' desired state and repairs the difference (see the
// package documentation). Devices with a command in the queue are left to
// it. An engine that cannot be reached is skipped and named in Pass.Errors.
func (f *Function) Reconcile(ctx context.Context) (Pass, error) {
	f.passing.Lock()
	defer f.passing.Unlock()
	start := time.Now()
	var p Pass
	before, err := listDevices(ctx, f.pool)
	if err != nil {
		return p, err
	}
	if _, err := f.loadNodes(ctx); err != nil {
		return p, err
	}
	hosts := knownHosts(before, f.engines)
	f.ensureWatches(f.loopContext(), hosts)
	// Containers first, then rows: every container seen existed before the
	// rows are read, so the command that made it is visible (done or queued).
	views := map[string]*engineView{}
	for _, h := range hosts {
		c, err := f.engines.client(h, nodeOfHost(before, h, f.engines))
		if err == nil {
			var list []container.Summary
			if list, err = f.engines.listManaged(ctx, c); err == nil {
				v := &engineView{client: c, byDevice: map[string]container.Summary{}}
				for _, ctr := range list {
					// A container of a node on another engine (two nodes
					// sharing one daemon) is that engine's to judge.
					if e, ok := f.engines.nodeEngine(ctr.Labels[LabelNodeID]); ok && e != h {
						continue
					}
					v.containers = append(v.containers, ctr)
					v.byDevice[ctr.Labels[LabelDeviceID]] = ctr
				}
				views[h] = v
				p.Engines++
				p.Containers += len(v.containers)
				continue
			}
		}
		p.Errors = append(p.Errors, fmt.Sprintf("engine %s: %v", describeHost(h), err))
	}
	devs, err := listDevices(ctx, f.pool)
	if err != nil {
		return p, err
	}
	pending, err := pendingDevices(ctx, f.pool)
	if err != nil {
		return p, err
	}

	for h, v := range views {
		for _, ctr := range v.containers {
			id := ctr.Labels[LabelDeviceID]
			d := devs[id]
			node := ctr.Labels[LabelNodeID]
			if d != nil && d.Desired != desiredDeleted && f.engines.key(d.DockerHost) == h &&
				(node == "" || d.NodeID == "" || node == d.NodeID) || pending[id] {
				continue
			}
			removed, err := f.removeOrphan(ctx, v.client, ctr, d)
			if err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("container %s: %v", ctr.ID[:12], err))
			} else if removed {
				p.Removed++
			}
		}
	}

	type suspect struct {
		d      *device
		v      *engineView
		reason string
	}
	var (
		suspects []suspect
		mu       sync.Mutex
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 16)
	)
	for _, d := range devs {
		if d.Desired != desiredDeleted {
			p.Devices++
		}
		v := views[f.engines.key(d.DockerHost)]
		if v == nil || pending[d.ID] {
			continue
		}
		ctr, ok := v.byDevice[d.ID]
		switch {
		case d.Desired == desiredStopped && ok && ctr.State == "running":
			if stopped, err := f.enforceStop(ctx, v.client, d.ID); err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("device %s: %v", d.ID, err))
			} else if stopped {
				p.Stopped++
			}
			continue
		case d.Desired != desiredRunning:
			continue
		case d.Observed == observedCrashed && d.Recreations >= f.cfg.MaxRecreations && (!ok || ctr.State != "running"):
			continue // left in error until the next start
		case d.Observed != observedRunning && d.Observed != observedCrashed:
			continue
		case !ok:
			suspects = append(suspects, suspect{d, v, "the container is missing"})
			continue
		case ctr.State != "running":
			suspects = append(suspects, suspect{d, v, "the container is " + ctr.State})
			continue
		}
		p.Checked++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			addr := f.adbAddr(v.client, d.ADBPort)
			err := ADBHandshake(ctx, addr, 2*time.Second)
			if err == nil {
				f.health.ok(d.ID)
				if d.Observed == observedCrashed {
					mu.Lock()
					suspects = append(suspects, suspect{d, v, ""}) // back: recovered
					mu.Unlock()
				}
				return
			}
			if n := f.health.fail(d.ID); n >= f.cfg.HealthFailures && d.Observed == observedRunning {
				mu.Lock()
				suspects = append(suspects, suspect{d, v, fmt.Sprintf("ADB does not answer on %s (%d checks in a row): %v", addr, n, err)})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, s := range suspects {
		r, err := f.repair(ctx, s.v.client, s.d.ID, s.reason)
		if err != nil {
			p.Errors = append(p.Errors, fmt.Sprintf("device %s: %v", s.d.ID, err))
		}
		p.Crashed += r.crashed
		p.Recreated += r.recreated
		p.Recovered += r.recovered
		if f.metrics != nil {
			f.metrics.PhoneCrashes.Add(float64(r.crashed))
			f.metrics.PhoneRecreations.Add(float64(r.recreated))
		}
	}
	if err := pruneCommands(ctx, f.pool, commandHistory); err != nil && ctx.Err() == nil {
		p.Errors = append(p.Errors, "prune commands: "+err.Error())
	}
	p.Took = time.Since(start)
	return p, ctx.Err()
}

// loopContext is the context of the running loops (a done one when the
// runtime is not running).
func (f *Function) loopContext() context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopClaims == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	return f.claimsCtx
}

func nodeOfHost(devs map[string]*device, host string, e *engines) string {
	for _, d := range devs {
		if e.key(d.DockerHost) == host && d.NodeID != "" {
			return d.NodeID
		}
	}
	return ""
}

type repairResult struct{ crashed, recreated, recovered int }

// repair handles a device that should run but whose container is missing,
// not running or not answering (reason), or, with reason "", a crashed
// device found healthy again. It reports the crash once and recreates the
// container while the device has recreations left. A device locked by a
// command, or with one queued, is left alone.
func (f *Function) repair(ctx context.Context, c *client.Client, id, reason string) (repairResult, error) {
	var (
		r   repairResult
		evs findingBatch
	)
	err := db.WithTx(ctx, f.pool, func(tx pgx.Tx) error {
		d, locked, err := tryLockDevice(ctx, tx, id)
		if err != nil || !locked || d == nil || d.Desired != desiredRunning {
			return err
		}
		busy, err := pendingDevices(ctx, tx, id)
		if err != nil || busy[id] {
			return err
		}
		ci, exists, err := inspect(ctx, c, id)
		if err != nil {
			return err
		}
		running := exists && ci.State != nil && ci.State.Running
		o := &outcome{dev: d}
		if reason == "" {
			if !running || d.Observed != observedCrashed {
				return nil
			}
			d.Observed, d.ContainerID = observedRunning, ci.ID
			o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeStarted, d, OpReconcile, "the container runs and answers ADB again", nil))
			r.recovered++
		} else {
			if running && !isHealthReason(reason) {
				return nil // it came back meanwhile
			}
			if d.Observed != observedCrashed {
				var exit *int
				if exists && ci.State != nil && !ci.State.Running {
					code := ci.State.ExitCode
					exit = &code
				}
				if !isHealthReason(reason) {
					reason = crashReason(ci, exists)
				}
				d.Observed = observedCrashed
				o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeCrashed, d, OpReconcile, reason, exit))
				r.crashed++
			}
			if d.Recreations < f.cfg.MaxRecreations {
				if exists {
					if err := removeContainer(ctx, c, ci.ID); err != nil {
						return err
					}
				}
				d.ContainerID = ""
				d.Recreations++
				if err := f.bringUp(ctx, c, d, o); err != nil {
					if transient(err) {
						return err // nothing recorded; the next pass tries again
					}
					d.Observed = observedFailed
					o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeFailed, d, OpRecreate, err.Error(), nil))
				} else {
					d.Observed = observedRunning
					o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeStarted, d, OpRecreate, "", nil))
					r.recreated++
					f.health.ok(d.ID)
				}
			}
		}
		if err := d.save(ctx, tx); err != nil {
			return err
		}
		evs, err = emit(ctx, tx, o.reports)
		return err
	})
	if err != nil {
		return repairResult{}, err
	}
	f.published(evs)
	return r, nil
}

func isHealthReason(reason string) bool {
	return len(reason) >= 3 && reason[:3] == "ADB"
}

// removeOrphan removes a managed container whose device does not exist, is
// deleted or lives on another engine, and reports it removed.
func (f *Function) removeOrphan(ctx context.Context, c *client.Client, ctr container.Summary, known *device) (bool, error) {
	id := ctr.Labels[LabelDeviceID]
	removed := false
	var published findingBatch
	err := db.WithTx(ctx, f.pool, func(tx pgx.Tx) error {
		d := known
		if known != nil {
			var locked bool
			var err error
			d, locked, err = tryLockDevice(ctx, tx, id)
			if err != nil || !locked {
				return err
			}
			if node := ctr.Labels[LabelNodeID]; d != nil && d.Desired != desiredDeleted && d.DockerHost == known.DockerHost &&
				(node == "" || d.NodeID == "" || node == d.NodeID) {
				return nil // the device came back to life meanwhile
			}
		}
		if id != "" {
			busy, err := pendingDevices(ctx, tx, id)
			if err != nil || busy[id] {
				return err
			}
		}
		if err := removeContainer(ctx, c, ctr.ID); err != nil {
			return err
		}
		removed = true
		reason := "no such device"
		if d != nil && d.Desired == desiredDeleted {
			reason = "the device was deleted"
		} else if d != nil {
			reason = "the device lives on another node"
		}
		stub := &device{ID: id, NodeID: ctr.Labels[LabelNodeID], ContainerID: ctr.ID}
		if id == "" {
			return nil
		}
		evs, err := emit(ctx, tx, []finding{newFinding(deviceevents.EventRuntimeRemoved, stub, OpReconcile, reason, nil)})
		published = evs
		return err
	})
	if err == nil {
		f.published(published)
	}
	return removed, err
}

// enforceStop stops a container whose device should be stopped.
func (f *Function) enforceStop(ctx context.Context, c *client.Client, id string) (bool, error) {
	stopped := false
	var published findingBatch
	err := db.WithTx(ctx, f.pool, func(tx pgx.Tx) error {
		d, locked, err := tryLockDevice(ctx, tx, id)
		if err != nil || !locked || d == nil || d.Desired != desiredStopped {
			return err
		}
		busy, err := pendingDevices(ctx, tx, id)
		if err != nil || busy[id] {
			return err
		}
		o := &outcome{dev: d}
		exit, err := f.stop(ctx, c, d, o)
		if err != nil {
			return err
		}
		stopped = true
		d.Observed = observedStopped
		if err := d.save(ctx, tx); err != nil {
			return err
		}
		published, err = emit(ctx, tx, []finding{newFinding(deviceevents.EventRuntimeStopped, d, OpReconcile, "the container ran while the device should be stopped", exit)})
		return err
	})
	if err == nil {
		f.published(published)
	}
	return stopped, err
}

// findingBatch is the events one transaction emitted.
type findingBatch = []event.Event
