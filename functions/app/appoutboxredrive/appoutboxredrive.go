// Package appoutboxredrive is app-outbox-redrive: on its schedule it puts the
// app context's parked outbox rows (events that kept failing to reach the
// broker) back to pending.
package appoutboxredrive

import (
	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/appevents"
	"github.com/cloudphone/cloudphone/functions/app/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "app-outbox-redrive"

// Entry declares the function: every five minutes its PingSource sends
// app.EventOutboxRedriveRequested.
var Entry = function.OutboxRedriveEntry(Name, app.ContextName, app.Database, appevents.EventOutboxRedriveRequested, wiring.Pool)
