package registry

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationadminmail"
	"github.com/cloudphone/cloudphone/functions/notification/notificationdelivery"
	"github.com/cloudphone/cloudphone/functions/notification/notificationinbox"
	"github.com/cloudphone/cloudphone/functions/notification/notificationpreferences"
	"github.com/cloudphone/cloudphone/functions/notification/notificationrecorder"
	"github.com/cloudphone/cloudphone/functions/notification/notificationstream"
	"github.com/cloudphone/cloudphone/functions/notification/notificationwebhooks"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/platform"
)

var notificationBuilders = map[string]platform.Builder{
	notificationrecorder.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := notificationService(ctx, r)
		if err != nil {
			return nil, err
		}
		return notificationrecorder.New(svc, r.Log), nil
	},
	notificationinbox.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := notificationService(ctx, r)
		if err != nil {
			return nil, err
		}
		return notificationinbox.New(svc, svc.Verifier(), r.Log), nil
	},
	notificationpreferences.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := notificationService(ctx, r)
		if err != nil {
			return nil, err
		}
		return notificationpreferences.New(svc, svc.Verifier(), r.Log), nil
	},
	notificationstream.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := notificationService(ctx, r)
		if err != nil {
			return nil, err
		}
		return notificationstream.New(svc, svc.Verifier(), r.Log), nil
	},
	notificationwebhooks.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := notificationService(ctx, r)
		if err != nil {
			return nil, err
		}
		return notificationwebhooks.New(svc, svc.Verifier(), r.Log), nil
	},
	notificationdelivery.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := notificationService(ctx, r)
		if err != nil {
			return nil, err
		}
		return notificationdelivery.New(svc, r.Log), nil
	},
	notificationadminmail.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := notificationService(ctx, r)
		if err != nil {
			return nil, err
		}
		return notificationadminmail.New(svc.Config().MailDir, svc.Verifier(), r.Log), nil
	},
}

// notificationService is the notification context's Service, made once per
// process.
func notificationService(ctx context.Context, r *platform.Resources) (*notification.Service, error) {
	v, err := r.Once("service:notification", func() (any, error) {
		pool, err := r.Postgres(ctx, notification.Database, inbox.Migrations, notification.Migrations)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		var cfg notification.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		return notification.Open(pool, rdb, cfg, r.Log.With("context", "notification"))
	})
	if err != nil {
		return nil, err
	}
	return v.(*notification.Service), nil
}
