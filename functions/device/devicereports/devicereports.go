// Package devicereports is the device-reports function: it turns device-runtime's
// reports (cloudphone.device.runtime.*) into device state and facts, and its
// app facts (cloudphone.app.installed, install_failed, uninstalled) into the
// state of the apps on each device.
package devicereports

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "device-reports"

// Consumes are the report and fact types the function handles.
var Consumes = append(slices.Clone(deviceevents.RuntimeReports), deviceevents.AppFacts...)

// Emits are the facts and commands it may write to the outbox.
var Emits = []string{deviceevents.EventRunning, deviceevents.EventStopped, deviceevents.EventError, deviceevents.EventDeleted, deviceevents.EventStopRequested}

// Function applies one runtime report with device.Service.ApplyReport: a
// duplicate, stale or out-of-place report is acknowledged and changes
// nothing; undecodable data is refused permanently; a database or quota
// failure is retried. Safe for concurrent use.
type Function struct {
	svc *device.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *device.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("reports: New needs a device.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle applies one report or app fact.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if slices.Contains(deviceevents.AppFacts, e.Type()) {
		var fact deviceevents.AppFact
		if err := e.DataAs(&fact); err != nil {
			return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		if fact.DeviceID == "" {
			fact.DeviceID = e.Subject()
		}
		err := f.svc.ApplyAppFact(ctx, e, fact)
		if apierr.Is(err, apierr.Invalid) {
			return nil, function.Permanent(err)
		}
		return nil, err
	}
	var r deviceevents.RuntimeReport
	if err := e.DataAs(&r); err != nil {
		return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
	}
	if r.DeviceID == "" {
		r.DeviceID = e.Subject()
	}
	err := f.svc.ApplyReport(ctx, e, r)
	if apierr.Is(err, apierr.Invalid) {
		return nil, function.Permanent(err)
	}
	return nil, err
}
