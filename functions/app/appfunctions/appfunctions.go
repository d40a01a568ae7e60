// Package appfunctions lists the app context's functions and the event types
// it produces: the one place the context declares what it deploys. The
// catalog concatenates every context's lists.
package appfunctions

import (
	"github.com/cloudphone/cloudphone/functions/app/appapps"
	"github.com/cloudphone/cloudphone/functions/app/appappsinternal"
	"github.com/cloudphone/cloudphone/functions/app/appevents"
	"github.com/cloudphone/cloudphone/functions/app/appoutboxredrive"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Entries are the functions of the app context (uploaded APKs), in catalog
// order.
var Entries = []function.Entry{
	appapps.Entry,
	appappsinternal.Entry,
	appoutboxredrive.Entry,
}

// Events are the event types the app context produces, with their payloads.
var Events = []function.EventType{
	{Type: appevents.EventUploaded, Payload: appevents.Uploaded{}, Doc: "a user uploaded an APK; subject is the app id"},
	{Type: appevents.EventDeleted, Payload: appevents.Deleted{}, Doc: "a user deleted an app; subject is the app id"},
	{Type: appevents.EventOutboxRedriveRequested, Payload: events.Tick{}, Doc: "time to re-drive the app context's parked outbox rows"},
}
