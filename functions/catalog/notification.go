package catalog

import (
	"time"

	"github.com/cloudphone/cloudphone/functions/notification/notificationadminmail"
	"github.com/cloudphone/cloudphone/functions/notification/notificationdelivery"
	"github.com/cloudphone/cloudphone/functions/notification/notificationinbox"
	"github.com/cloudphone/cloudphone/functions/notification/notificationpreferences"
	"github.com/cloudphone/cloudphone/functions/notification/notificationrecorder"
	"github.com/cloudphone/cloudphone/functions/notification/notificationstream"
	"github.com/cloudphone/cloudphone/functions/notification/notificationwebhooks"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// SecretSMTPURL is the mail server's URL with its credentials.
const SecretSMTPURL = "smtp-url"

// notificationSpecs are the functions of the notification context.
var notificationSpecs = []runtime.Spec{
	{
		Name: notificationrecorder.Name, Context: ContextNotification, Kind: runtime.KindEvent,
		Consumes: notificationrecorder.Consumes,
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: notificationinbox.Name, Context: ContextNotification, Kind: runtime.KindHTTP,
		Routes:   notificationinbox.Routes,
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: notificationpreferences.Name, Context: ContextNotification, Kind: runtime.KindHTTP,
		Routes:   notificationpreferences.Routes,
		MaxScale: 5, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		// A stream lasts until the platform's request timeout (600 s at
		// most on Knative); the client then resumes with Last-Event-ID.
		Name: notificationstream.Name, Context: ContextNotification, Kind: runtime.KindHTTP,
		Routes:   notificationstream.Routes,
		MaxScale: 10, Concurrency: 1000, TimeoutSeconds: 600,
	},
	{
		Name: notificationwebhooks.Name, Context: ContextNotification, Kind: runtime.KindHTTP,
		Routes:   notificationwebhooks.Routes,
		MaxScale: 5, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		// Long-running: its worker sends what is queued at once; the
		// minute tick drains too.
		Name: notificationdelivery.Name, Context: ContextNotification, Kind: runtime.KindEvent,
		Consumes: notificationdelivery.Consumes,
		Schedule: notificationdelivery.Schedule,
		MinScale: 1, MaxScale: 3, Concurrency: 1, TimeoutSeconds: 120,
	},
	{
		Name: notificationadminmail.Name, Context: ContextNotification, Kind: runtime.KindHTTP,
		Routes:   notificationadminmail.Routes,
		MaxScale: 1, Concurrency: 10, TimeoutSeconds: 30,
	},
}

var notificationDeployments = map[string]Deployment{
	notificationrecorder.Name:    {Secrets: []string{SecretUserTokenPublicKey}},
	notificationinbox.Name:       {Secrets: []string{SecretUserTokenPublicKey}},
	notificationpreferences.Name: {Secrets: []string{SecretUserTokenPublicKey}},
	notificationstream.Name:      {Secrets: []string{SecretUserTokenPublicKey}},
	notificationwebhooks.Name:    {Secrets: []string{SecretUserTokenPublicKey}},
	notificationdelivery.Name: {Secrets: []string{SecretUserTokenPublicKey, SecretSMTPURL},
		Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second}},
	notificationadminmail.Name: {Secrets: []string{SecretUserTokenPublicKey}},
}

var notificationEvents = []EventType{
	{Type: notificationdelivery.EventDeliveryRequested, Payload: events.Tick{},
		Doc: "every minute: send the due emails and webhook deliveries of the notification context"},
}
