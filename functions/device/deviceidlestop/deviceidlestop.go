// Package deviceidlestop is device-idle-stop: it keeps the ADB gateway's
// connection facts (which sessions are open) and, every minute, stops the
// running devices that had no open session and no use for their user's idle
// limit (reason idle). Runs take a lease row, so one instance acts and a run
// that dies leaves the rest to the next.
package deviceidlestop

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "device-idle-stop"

// Schedule is the function's cron schedule (its tick is
// device.EventIdleCheckRequested).
const Schedule = "* * * * *"

// Consumes are the tick, first, and the gateway's connection facts.
var Consumes = []string{deviceevents.EventIdleCheckRequested, deviceevents.EventConnectionOpened, deviceevents.EventConnectionClosed}

// Emits is the stop command written for an idle device.
var Emits = []string{deviceevents.EventStopRequested}

// Config is the function's configuration.
type Config struct {
	// Minute is the length of one idle minute; tests shorten it so that a
	// plan's idle minutes pass in seconds.
	Minute time.Duration `env:"DEVICE_IDLE_MINUTE" default:"1m"`
	// Lease bounds how long a run that died keeps the next from acting.
	Lease time.Duration `env:"DEVICE_IDLE_LEASE" default:"2m"`
	// SessionMaxAge is how long a session with no closed fact (its gateway
	// died) still keeps its device from being idle.
	SessionMaxAge time.Duration `env:"DEVICE_IDLE_SESSION_MAX_AGE" default:"12h"`
}

// Function applies connection facts and runs the idle stop on each tick;
// a database failure is retried by the broker, an unreadable fact is
// refused permanently. Safe for concurrent use.
type Function struct {
	svc *device.Service
	opt device.IdleOptions
	log *slog.Logger
}

// New returns device-idle-stop over svc. It panics when svc or log is nil
// or a duration is not positive.
func New(svc *device.Service, cfg Config, log *slog.Logger) *Function {
	if svc == nil || log == nil || cfg.Minute <= 0 || cfg.Lease <= 0 || cfg.SessionMaxAge <= 0 {
		panic("deviceidlestop: New needs a device.Service, a logger and positive durations")
	}
	return &Function{svc: svc, log: log, opt: device.IdleOptions{
		Minute: cfg.Minute, Lease: cfg.Lease, SessionMaxAge: cfg.SessionMaxAge, Batch: 500}}
}

// Handle records a connection fact, or runs the idle stop for a tick.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	switch e.Type() {
	case deviceevents.EventConnectionOpened, deviceevents.EventConnectionClosed:
		var c deviceevents.ConnectionFact
		if err := e.DataAs(&c); err != nil {
			return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		if c.DeviceID == "" {
			c.DeviceID = e.Subject()
		}
		err := f.svc.ApplyConnection(ctx, e.Type(), c)
		if apierr.Is(err, apierr.Invalid) {
			return nil, function.Permanent(err)
		}
		return nil, err
	case deviceevents.EventIdleCheckRequested:
		rep, err := f.svc.StopIdle(ctx, f.opt)
		if err != nil {
			return nil, fmt.Errorf("idle stop: %w", err)
		}
		log := f.log.DebugContext
		if rep.Stopped > 0 {
			log = f.log.InfoContext
		}
		log(ctx, "idle stop ran", "leased", rep.Leased, "stopped", rep.Stopped)
		return nil, nil
	}
	return nil, function.Permanent(fmt.Errorf("device-idle-stop does not handle %s", e.Type()))
}
