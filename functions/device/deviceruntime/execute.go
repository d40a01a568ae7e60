package deviceruntime

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
)

// finding is one report to emit: its type and data. An app fact has its
// data in App (and the device id in Data.DeviceID, its subject).
type finding struct {
	Type string
	Data deviceevents.RuntimeReport
	App  *deviceevents.AppFact
}

// reason is the finding's reason.
func (fd finding) reason() string {
	if fd.App != nil {
		return fd.App.Reason
	}
	return fd.Data.Reason
}

func newFinding(typ string, d *device, op, reason string, exitCode *int) finding {
	return finding{Type: typ, Data: deviceevents.RuntimeReport{
		SchemaVersion: SchemaVersion, DeviceID: d.ID, NodeID: d.NodeID, ContainerID: d.ContainerID,
		At: time.Now().UTC(), Op: op, Reason: reason, ExitCode: exitCode, Seq: d.Seq,
	}}
}

// outcome is what running one command (or one repair) came to.
type outcome struct {
	dev     *device   // the device's state to save; nil saves nothing
	reports []finding // in order
	retry   error     // a failure that may pass: try the command again later
	failed  bool      // the command failed for good (a failed report is in reports)
	docker  time.Duration
	adbWait time.Duration
	// giveUp, when set, adds the findings of a command whose failures that
	// may pass went on too long (instead of a failed report of the device).
	giveUp func(err error)
	// reason is why the command failed, when no finding says it.
	reason string
}

// fail records err as the outcome: retried later when it may pass, else a
// failed report and the device marked failed.
func (o *outcome) fail(d *device, op string, err error) {
	if transient(err) {
		o.retry = err
		return
	}
	o.failed = true
	d.Observed = observedFailed
	o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeFailed, d, op, err.Error(), nil))
}

// timed runs fn and adds its duration to *sum.
func timed(sum *time.Duration, fn func() error) error {
	start := time.Now()
	err := fn()
	*sum += time.Since(start)
	return err
}

// execute runs one command against the device's engine. dev is the device's
// locked row, nil when the runtime has never heard of the device.
func (f *Function) execute(ctx context.Context, tx pgx.Tx, q *queued, dev *device) *outcome {
	if q.Op == OpInstall || q.Op == OpUninstall {
		return f.executeApp(ctx, q, dev)
	}
	cmd := q.Cmd
	if dev != nil && cmd.Seq > 0 && cmd.Seq < dev.Seq {
		// A newer command for this device has already run: this one was
		// delivered late, and doing it now would undo the newer one (a start
		// after the stop that followed it). It is done, with nothing to do.
		return &outcome{dev: dev}
	}
	d := mergeCommand(dev, cmd, f.cfg.Image)
	o := &outcome{dev: d}
	if dev != nil && dev.Desired == desiredDeleted && q.Op != OpDelete {
		// Device ids are never reused: a command after the delete is late.
		o.failed = true
		o.dev = nil
		o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeFailed, d, q.Op, "the device was deleted", nil))
		return o
	}
	if err := f.admit(ctx, tx, q.Op, d); err != nil {
		o.fail(d, q.Op, err)
		if _, refused := err.(errRefused); refused {
			// Nothing of a refused command is kept: the reconcile loop
			// would otherwise dial its engine.
			o.dev = nil
			f.log.WarnContext(ctx, "device-runtime: command refused by policy", "device_id", d.ID, "op", q.Op, "reason", err.Error())
		}
		return o
	}
	c, err := f.engines.client(d.DockerHost, d.NodeID)
	if err != nil {
		o.fail(d, q.Op, err)
		return o
	}
	if dev != nil && dev.NodeID != "" && d.NodeID != dev.NodeID && f.engines.key(dev.DockerHost) != f.engines.key(d.DockerHost) {
		f.leaveNode(ctx, dev)
	}
	switch q.Op {
	case OpCreate:
		d.Desired, d.Recreations = desiredRunning, 0
		if err := f.bringUp(ctx, c, d, o); err != nil {
			o.fail(d, q.Op, err)
			return o
		}
		d.Observed = observedRunning
		o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeCreated, d, q.Op, "", nil), newFinding(deviceevents.EventRuntimeStarted, d, q.Op, "", nil))
	case OpStart:
		if dev == nil {
			o.fail(d, q.Op, errors.New("unknown device: no create command was received for it"))
			o.dev = nil
			return o
		}
		d.Desired, d.Recreations = desiredRunning, 0
		if err := f.bringUp(ctx, c, d, o); err != nil {
			o.fail(d, q.Op, err)
			return o
		}
		d.Observed = observedRunning
		o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeStarted, d, q.Op, "", nil))
	case OpRestart:
		if dev == nil {
			o.fail(d, q.Op, errors.New("unknown device: no create command was received for it"))
			o.dev = nil
			return o
		}
		d.Desired, d.Recreations = desiredRunning, 0
		if err := f.restart(ctx, c, d, o); err != nil {
			o.fail(d, q.Op, err)
			return o
		}
		d.Observed = observedRunning
		o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeRestarted, d, q.Op, "", nil))
	case OpStop:
		d.Desired = desiredStopped
		exit, err := f.stop(ctx, c, d, o)
		if err != nil {
			o.fail(d, q.Op, err)
			return o
		}
		d.Observed = observedStopped
		o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeStopped, d, q.Op, "", exit))
		// A stop for a device never created is remembered too (desired
		// stopped, its seq), so that a create delivered after it is known
		// to be stale.
	case OpDelete:
		d.Desired = desiredDeleted
		err := timed(&o.docker, func() error { return removeContainer(ctx, c, ContainerName(d.ID)) })
		if err != nil {
			o.fail(d, q.Op, err)
			return o
		}
		d.Observed = observedRemoved
		o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeRemoved, d, q.Op, "", nil))
	default:
		o.failed = true
		o.dev = nil
		o.reports = append(o.reports, newFinding(deviceevents.EventRuntimeFailed, d, q.Op, "unknown op "+q.Op, nil))
	}
	return o
}

// mergeCommand is dev updated with what cmd says (a new device when dev is
// nil); fields a command leaves empty keep their value.
func mergeCommand(dev *device, cmd deviceevents.Command, defaultImage string) *device {
	d := &device{ID: cmd.DeviceID, Observed: observedUnknown}
	if dev != nil {
		c := *dev
		d = &c
	}
	setString := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setString(&d.UserID, cmd.UserID)
	setString(&d.NodeID, cmd.NodeID)
	setString(&d.DockerHost, cmd.DockerHost)
	setString(&d.Image, cmd.Image)
	setString(&d.Name, cmd.Name)
	if cmd.CPUCores > 0 {
		d.CPUCores = cmd.CPUCores
	}
	if cmd.MemoryMB > 0 {
		d.MemoryMB = int64(cmd.MemoryMB)
	}
	if cmd.StorageGB > 0 {
		d.StorageGB = int64(cmd.StorageGB)
	}
	if cmd.ADBPort > 0 {
		d.ADBPort = cmd.ADBPort
	}
	if cmd.Seq > d.Seq {
		d.Seq = cmd.Seq
	}
	if d.Image == "" {
		d.Image = defaultImage
	}
	return d
}

// bringUp makes d's container exist and run and answer ADB: it creates the
// container when there is none (so a repeated create does nothing more), starts
// it when it is not running, and waits for the ADB handshake on the published
// port. A container it created but could not start is removed again.
func (f *Function) bringUp(ctx context.Context, c *client.Client, d *device, o *outcome) error {
	if d.ADBPort <= 0 || d.CPUCores <= 0 || d.MemoryMB <= 0 {
		return fmt.Errorf("device %s has no adb_port, cpu_cores or memory_mb", d.ID)
	}
	var (
		ci     container.InspectResponse
		exists bool
	)
	err := timed(&o.docker, func() (err error) {
		ci, exists, err = inspect(ctx, c, d.ID)
		return err
	})
	if err != nil {
		return err
	}
	if exists && ci.Config != nil && ci.Config.Labels[LabelDeviceID] != d.ID {
		return fmt.Errorf("container %s on %s is not device %s's", ContainerName(d.ID), hostOf(c), d.ID)
	}
	if node := labelOf(ci, LabelNodeID); exists && node != "" && d.NodeID != "" && node != d.NodeID {
		// Made for the node the device was moved from, which shares this
		// engine: the device starts afresh on its new node.
		if err := timed(&o.docker, func() error { return removeContainer(ctx, c, ci.ID) }); err != nil {
			return err
		}
		exists = false
	}
	created := false
	if !exists {
		if err := timed(&o.docker, func() error { return f.ensureImage(ctx, c, d.Image) }); err != nil {
			return err
		}
		if err := timed(&o.docker, func() error { return f.ensureNetwork(ctx, c) }); err != nil {
			return err
		}
		cfg, hc := f.containerSpec(d)
		var resp container.CreateResponse
		err := timed(&o.docker, func() (err error) {
			resp, err = c.ContainerCreate(ctx, cfg, hc, nil, nil, ContainerName(d.ID))
			return err
		})
		switch {
		case cerrdefs.IsConflict(err):
			// Created meanwhile (a command redone after a crash, whose
			// aborted create the engine still finishes): use it once the
			// engine shows it.
			for i := 0; i < 20 && !exists; i++ {
				if i > 0 {
					time.Sleep(100 * time.Millisecond)
				}
				if err := timed(&o.docker, func() (err error) { ci, exists, err = inspect(ctx, c, d.ID); return err }); err != nil {
					return err
				}
			}
			if !exists {
				return errBusy{fmt.Errorf("create container %s on %s: the name is taken by a container still being made: %w",
					ContainerName(d.ID), hostOf(c), err)}
			}
			d.ContainerID = ci.ID
		case err != nil:
			return fmt.Errorf("create container %s on %s: %w", ContainerName(d.ID), hostOf(c), err)
		default:
			d.ContainerID, created = resp.ID, true
		}
	} else {
		d.ContainerID = ci.ID
	}
	if !exists || ci.State == nil || !ci.State.Running {
		err := timed(&o.docker, func() error { return c.ContainerStart(ctx, d.ContainerID, container.StartOptions{}) })
		if err != nil {
			err = fmt.Errorf("start container %s on %s: %w", ContainerName(d.ID), hostOf(c), err)
			if created && !transient(err) {
				_ = removeContainer(context.WithoutCancel(ctx), c, d.ContainerID)
				d.ContainerID = ""
			}
			return err
		}
	}
	return f.awaitADB(ctx, c, d, o)
}

// awaitADB waits for d's ADB port; a container that never answers is
// stopped, so it holds no CPU while the device is in error.
func (f *Function) awaitADB(ctx context.Context, c *client.Client, d *device, o *outcome) error {
	err := timed(&o.adbWait, func() error { return waitADB(ctx, f.adbAddr(c, d.ADBPort), f.cfg.ReadyTimeout) })
	if err != nil && ctx.Err() == nil {
		timeout := 1
		_ = c.ContainerStop(context.WithoutCancel(ctx), d.ContainerID, container.StopOptions{Timeout: &timeout})
		return fmt.Errorf("container %s started but %w", ContainerName(d.ID), err)
	}
	return err
}

// restart restarts d's running container, or brings it up when it is not
// running or missing.
func (f *Function) restart(ctx context.Context, c *client.Client, d *device, o *outcome) error {
	var (
		ci     container.InspectResponse
		exists bool
	)
	if err := timed(&o.docker, func() (err error) { ci, exists, err = inspect(ctx, c, d.ID); return err }); err != nil {
		return err
	}
	if !exists || ci.State == nil || !ci.State.Running {
		return f.bringUp(ctx, c, d, o)
	}
	d.ContainerID = ci.ID
	timeout := int(f.cfg.StopTimeout.Seconds())
	err := timed(&o.docker, func() error {
		return c.ContainerRestart(ctx, ci.ID, container.StopOptions{Timeout: &timeout})
	})
	if err != nil {
		return fmt.Errorf("restart container %s on %s: %w", ContainerName(d.ID), hostOf(c), err)
	}
	return f.awaitADB(ctx, c, d, o)
}

// stop stops d's container; a missing or stopped one is already stopped.
// It returns the container's exit code when it has one.
func (f *Function) stop(ctx context.Context, c *client.Client, d *device, o *outcome) (*int, error) {
	var (
		ci     container.InspectResponse
		exists bool
	)
	if err := timed(&o.docker, func() (err error) { ci, exists, err = inspect(ctx, c, d.ID); return err }); err != nil {
		return nil, err
	}
	if !exists {
		return nil, nil
	}
	d.ContainerID = ci.ID
	if ci.State != nil && ci.State.Running {
		timeout := int(f.cfg.StopTimeout.Seconds())
		err := timed(&o.docker, func() error { return c.ContainerStop(ctx, ci.ID, container.StopOptions{Timeout: &timeout}) })
		if err != nil && !cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("stop container %s on %s: %w", ContainerName(d.ID), hostOf(c), err)
		}
		if err := timed(&o.docker, func() (err error) { ci, exists, err = inspect(ctx, c, d.ID); return err }); err != nil || !exists {
			return nil, err
		}
	}
	if ci.State != nil {
		code := ci.State.ExitCode
		return &code, nil
	}
	return nil, nil
}

// labelOf is the container's label k, "" when it has none.
func labelOf(ci container.InspectResponse, k string) string {
	if ci.Config == nil {
		return ""
	}
	return ci.Config.Labels[k]
}

// leaveNode removes the container of a device moved off old's node from
// that node's engine, when the engine answers within 10 s; one that does
// not keeps it until its reconcile pass removes it as another node's.
func (f *Function) leaveNode(ctx context.Context, old *device) {
	c, err := f.engines.client(old.DockerHost, old.NodeID)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = removeContainer(ctx, c, ContainerName(old.ID))
	}
	if err != nil {
		f.log.WarnContext(ctx, "device-runtime: the container of a moved device stays on its old node for now",
			"device_id", old.ID, "node_id", old.NodeID, "err", err)
	}
}
