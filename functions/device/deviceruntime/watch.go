package deviceruntime

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	dockerevents "github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/db"
)

// watchLocked starts the events watch of engine host (a key of engines)
// unless it runs already. f.mu must be held.
func (f *Function) watchLocked(ctx context.Context, host string) {
	if f.watching[host] || f.stopClaims == nil || ctx.Err() != nil {
		return
	}
	f.watching[host] = true
	f.loops.Go(func() { f.watch(ctx, host) })
}

// ensureWatches starts a watch for every engine in hosts.
func (f *Function) ensureWatches(ctx context.Context, hosts []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range hosts {
		f.watchLocked(ctx, h)
	}
}

// watch follows the container events of one engine until ctx ends,
// reconnecting after a failure (and then asking for a reconcile pass, since
// events may have been missed meanwhile).
func (f *Function) watch(ctx context.Context, host string) {
	args := f.engines.managedFilter()
	args.Add("type", string(dockerevents.ContainerEventType))
	args.Add("event", string(dockerevents.ActionDie))
	for ctx.Err() == nil {
		c, err := f.engines.client(host, "")
		if err == nil {
			err = f.follow(ctx, c, args)
		}
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("device-runtime: Docker events watch lost; reconnecting", "docker_host", describeHost(host), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		f.requestReconcile()
	}
}

func (f *Function) follow(ctx context.Context, c *client.Client, args filters.Args) error {
	msgs, errs := c.Events(ctx, dockerevents.ListOptions{Filters: args})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case m := <-msgs:
			if m.Action == dockerevents.ActionDie {
				f.loops.Go(func() {
					if err := f.onDie(ctx, c, m); err != nil && ctx.Err() == nil {
						f.log.Error("device-runtime: handling a container's death failed", "container_id", m.Actor.ID, "err", err)
					}
				})
			}
		}
	}
}

// onDie reports a managed container that died while its device should run
// and nothing the runtime ordered explains it. The device's row lock is
// taken first, so a stop, restart or delete in progress finishes (and
// records the device's new desired state) before the death is judged.
func (f *Function) onDie(ctx context.Context, c *client.Client, m dockerevents.Message) error {
	id := m.Actor.Attributes[LabelDeviceID]
	if id == "" || !f.engines.mine(m.Actor.Attributes) {
		return nil
	}
	var exit *int
	if v, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
		exit = &v
	}
	var (
		reports   []finding
		published findingBatch
	)
	err := db.WithTx(ctx, f.pool, func(tx pgx.Tx) error {
		d, err := lockDevice(ctx, tx, id)
		if err != nil || d == nil {
			return err
		}
		if d.Desired != desiredRunning || d.Observed != observedRunning ||
			(d.ContainerID != "" && d.ContainerID != m.Actor.ID) {
			return nil
		}
		ci, exists, err := inspect(ctx, c, id)
		if err != nil {
			return err
		}
		if exists && ci.ID == d.ContainerID && ci.State != nil && ci.State.Running {
			return nil // it runs again (restarted meanwhile)
		}
		d.Observed = observedCrashed
		reports = []finding{newFinding(deviceevents.EventRuntimeCrashed, d, OpWatch, crashReason(ci, exists), exit)}
		if err := d.save(ctx, tx); err != nil {
			return err
		}
		published, err = emit(ctx, tx, reports)
		return err
	})
	if err == nil && len(reports) > 0 {
		if f.metrics != nil {
			f.metrics.PhoneCrashes.Inc()
		}
		f.published(published)
		f.log.Warn("device-runtime: phone container died", "device_id", id, "reason", reports[0].Data.Reason)
	}
	return err
}

// crashReason says why a device's container is not running.
func crashReason(ci container.InspectResponse, exists bool) string {
	switch {
	case !exists:
		return "the container is missing"
	case ci.State != nil && ci.State.OOMKilled:
		return "the container was killed: out of memory"
	case ci.State != nil && ci.State.Running:
		return "the container runs but does not answer ADB"
	case ci.State != nil && ci.State.Status != "exited" && ci.State.Status != "":
		return fmt.Sprintf("the container is %s", ci.State.Status)
	}
	return "the container exited" // the report's exit_code says how
}
