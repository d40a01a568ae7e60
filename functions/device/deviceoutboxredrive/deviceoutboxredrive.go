// Package deviceoutboxredrive is device-outbox-redrive: on its schedule it
// puts the device context's parked outbox rows (events that kept failing to
// reach the broker) back to pending.
package deviceoutboxredrive

import (
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "device-outbox-redrive"

// Entry declares the function: every five minutes its PingSource sends
// device.EventOutboxRedriveRequested.
var Entry = function.OutboxRedriveEntry(Name, device.ContextName, device.Database, deviceevents.EventOutboxRedriveRequested, wiring.Pool)
