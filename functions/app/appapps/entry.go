package appapps

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/appevents"
	"github.com/cloudphone/cloudphone/functions/app/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. An upload of
// 200 MB over a slow link takes minutes, hence the timeout.
var Entry = function.HTTPEntry(function.Spec{
	Name: Name, Context: app.ContextName,
	Routes: Routes, API: API,
	Emits:    []string{appevents.EventUploaded, appevents.EventDeleted},
	MaxScale: 5, Concurrency: 20, TimeoutSeconds: 600,
	Secrets: []string{function.SecretUserTokenPublicKey, app.SecretS3Endpoint, app.SecretS3AccessKeyID, app.SecretS3SecretAccessKey},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, cfg, err := wiring.Service(ctx, r)
	if err != nil {
		return nil, err
	}
	return New(svc, cfg.MaxAPKBytes, r.Log), nil
}
