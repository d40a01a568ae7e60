package registry

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/apps"
	"github.com/cloudphone/cloudphone/functions/app/appsinternal"
	"github.com/cloudphone/cloudphone/functions/scheduler/outboxredrive"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/objectstore"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/platform"
)

var appBuilders = map[string]platform.Builder{
	apps.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, cfg, err := appService(ctx, r)
		if err != nil {
			return nil, err
		}
		return apps.New(svc, cfg.MaxAPKBytes, r.Log), nil
	},
	appsinternal.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, _, err := appService(ctx, r)
		if err != nil {
			return nil, err
		}
		var cfg appsinternal.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		v, err := cfg.Verifier()
		if err != nil {
			return nil, err
		}
		return appsinternal.New(svc, v, r.Log), nil
	},
	"app-outbox-redrive": func(ctx context.Context, r *platform.Resources) (any, error) {
		if _, err := r.Postgres(ctx, app.Database, outbox.Migrations, inbox.Migrations, app.Migrations); err != nil {
			return nil, err
		}
		return outboxredrive.New(r.Relay(app.Database), r.Log), nil
	},
}

// appService is the app context's Service, made once per process, with the
// bucket created when missing.
func appService(ctx context.Context, r *platform.Resources) (*app.Service, app.Config, error) {
	var cfg app.Config
	if err := config.Load(r.Env, &cfg); err != nil {
		return nil, cfg, err
	}
	v, err := r.Once("service:app", func() (any, error) {
		pool, err := r.Postgres(ctx, app.Database, outbox.Migrations, inbox.Migrations, app.Migrations)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		store, err := objectstore.New(cfg.Store)
		if err != nil {
			return nil, err
		}
		if err := store.EnsureBucket(ctx); err != nil {
			return nil, err
		}
		return app.Open(pool, store, rdb, cfg, r.Log.With("context", "app"))
	})
	if err != nil {
		return nil, cfg, err
	}
	return v.(*app.Service), cfg, nil
}
