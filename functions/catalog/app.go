package catalog

import (
	"time"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/apps"
	"github.com/cloudphone/cloudphone/functions/app/appsinternal"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// Secrets of the S3-compatible store that keeps APKs (its bucket and region
// are S3_BUCKET and S3_REGION, defaults cloudphone and us-east-1).
const (
	SecretS3Endpoint        = "s3-endpoint"
	SecretS3AccessKeyID     = "s3-access-key-id"
	SecretS3SecretAccessKey = "s3-secret-access-key"
)

var s3Secrets = []string{SecretS3Endpoint, SecretS3AccessKeyID, SecretS3SecretAccessKey}

// appSpecs are the functions of the app context.
var appSpecs = []runtime.Spec{
	{
		Name: apps.Name, Context: ContextApp, Kind: runtime.KindHTTP,
		Routes: apps.Routes,
		Emits:  []string{app.EventUploaded, app.EventDeleted},
		// An upload of 200 MB on a slow link takes minutes.
		MaxScale: 5, Concurrency: 20, TimeoutSeconds: 600,
	},
	{
		Name: appsinternal.Name, Context: ContextApp, Kind: runtime.KindHTTP,
		Routes:   appsinternal.Routes,
		MaxScale: 5, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: "app-outbox-redrive", Context: ContextApp, Kind: runtime.KindEvent,
		Consumes: []string{app.EventOutboxRedriveRequested},
		Schedule: "*/5 * * * *",
		MaxScale: 1, Concurrency: 1, TimeoutSeconds: 60,
	},
}

var appDeployments = map[string]Deployment{
	apps.Name:            {Secrets: append([]string{SecretUserTokenPublicKey}, s3Secrets...)},
	appsinternal.Name:    {Secrets: append([]string{SecretUserTokenPublicKey, SecretServiceTokenPublicKey}, s3Secrets...)},
	"app-outbox-redrive": {Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second}},
}

var appEvents = []EventType{
	{Type: app.EventUploaded, Payload: app.Uploaded{}, Doc: "a user uploaded an APK; subject is the app id"},
	{Type: app.EventDeleted, Payload: app.Deleted{}, Doc: "a user deleted an app; subject is the app id"},
	{Type: app.EventOutboxRedriveRequested, Payload: events.Tick{}, Doc: "time to re-drive the app context's parked outbox rows"},
}
