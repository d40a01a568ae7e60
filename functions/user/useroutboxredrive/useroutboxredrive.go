// Package useroutboxredrive is user-outbox-redrive: on its schedule it puts
// the user context's parked outbox rows (events that kept failing to reach
// the broker) back to pending.
package useroutboxredrive

import (
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/internal/wiring"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "user-outbox-redrive"

// Entry declares the function: every five minutes its PingSource sends
// user.EventOutboxRedriveRequested.
var Entry = function.OutboxRedriveEntry(Name, user.ContextName, user.Database, userevents.EventOutboxRedriveRequested, wiring.Pool)
