// Package wiring makes the app context's shared parts once per process, for
// the builders of the context's functions: the database (with its outbox
// relay), the object store and the Service. Only the app context can import
// it.
package wiring

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/objectstore"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Pool opens the app context's database (and so starts its outbox relay).
func Pool(ctx context.Context, r *process.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, app.Database, outbox.Migrations, inbox.Migrations, app.Migrations)
}

// Service is the app context's Service, made once per process, with its
// bucket created when missing, and the configuration it runs with.
func Service(ctx context.Context, r *process.Resources) (*app.Service, app.Config, error) {
	var cfg app.Config
	if err := config.Load(r.Env, &cfg); err != nil {
		return nil, cfg, err
	}
	v, err := r.Once("service:app", func() (any, error) {
		pool, err := Pool(ctx, r)
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
