// Package notificationfunctions lists the notification context's functions
// and the event types it produces: the one place the context declares what
// it deploys. The catalog concatenates every context's lists.
package notificationfunctions

import (
	"github.com/cloudphone/cloudphone/functions/notification/notificationadminmail"
	"github.com/cloudphone/cloudphone/functions/notification/notificationdelivery"
	"github.com/cloudphone/cloudphone/functions/notification/notificationevents"
	"github.com/cloudphone/cloudphone/functions/notification/notificationinbox"
	"github.com/cloudphone/cloudphone/functions/notification/notificationpreferences"
	"github.com/cloudphone/cloudphone/functions/notification/notificationrecorder"
	"github.com/cloudphone/cloudphone/functions/notification/notificationstream"
	"github.com/cloudphone/cloudphone/functions/notification/notificationwebhooks"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Entries are the functions of the notification context, in catalog order.
var Entries = []function.Entry{
	notificationrecorder.Entry,
	notificationinbox.Entry,
	notificationpreferences.Entry,
	notificationstream.Entry,
	notificationwebhooks.Entry,
	notificationdelivery.Entry,
	notificationadminmail.Entry,
}

// Events are the event types the notification context produces, with their
// payloads.
var Events = []function.EventType{
	{Type: notificationevents.EventDeliveryRequested, Payload: events.Tick{},
		Doc: "every minute: send the due emails and webhook deliveries of the notification context"},
}
