package notificationdelivery

import (
	"context"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: notification.ContextName,
	// Long-running: its worker sends what is queued at once; the minute
	// tick drains too.
	Consumes: Consumes,
	Schedule: Schedule,
	MinScale: 1, MaxScale: 3, Concurrency: 1, TimeoutSeconds: 120,
	Secrets:  []string{function.SecretUserTokenPublicKey, SecretSMTPURL},
	Delivery: &function.Delivery{Retry: 1, BackoffDelay: 10 * time.Second},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, err := wiring.Service(ctx, r)
	if err != nil {
		return nil, err
	}
	return New(svc, r.Log), nil
}

// SecretSMTPURL is the mail server's URL with its credentials (SMTP_URL).
const SecretSMTPURL = "smtp-url"
