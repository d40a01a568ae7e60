package notificationwebhooks

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.HTTPEntry(function.Spec{
	Name: Name, Context: notification.ContextName,
	Routes: Routes, API: API,
	MaxScale: 5, Concurrency: 50, TimeoutSeconds: 30,
	Secrets: []string{function.SecretUserTokenPublicKey},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, err := wiring.Service(ctx, r)
	if err != nil {
		return nil, err
	}
	return New(svc, svc.Verifier(), r.Log), nil
}
