// Package wiring makes the billing context's shared parts once per process,
// for the builders of the context's functions: the database (with its outbox
// relay) and the Service. Only the billing context can import it.
package wiring

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/fault"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Pool opens the billing context's database (and so starts its outbox relay).
func Pool(ctx context.Context, r *process.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, billing.Database, outbox.Migrations, inbox.Migrations, billing.Migrations)
}

// Service is the billing context's Service, made once per process. With
// CLOUDPHONE_FAULT set (crash tests only) the process dies right after the
// named step commits.
func Service(ctx context.Context, r *process.Resources) (*billing.Service, error) {
	v, err := r.Once("service:billing", func() (any, error) {
		pool, err := Pool(ctx, r)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		var cfg billing.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		svc, err := billing.Open(ctx, pool, rdb, cfg, r.Log.With("context", "billing"))
		if err != nil {
			return nil, err
		}
		if err := svc.ReportTo(r.Metrics); err != nil {
			return nil, err
		}
		if hook := fault.ExitAt(r.Env.Env[fault.Env], r.Log); hook != nil {
			svc.AfterStep(hook)
		}
		if err := checkUsers(svc, rdb, r); err != nil {
			return nil, err
		}
		return svc, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*billing.Service), nil
}

// usersConfig is what asking the user context about users needs.
type usersConfig struct {
	UserURL         string `env:"CLOUDPHONE_USER_URL" default:"http://127.0.0.1:8080"`
	ServiceTokenKey string `env:"CLOUDPHONE_SERVICE_TOKEN_KEY" secret:"service-token-key"`
	RedisPrefix     string `env:"CLOUDPHONE_REDIS_PREFIX"`
}

// checkUsers has svc refuse credits and top-ups for unknown user ids, asking
// the user context with service tokens of the billing context. The functions
// that move money in (billing-balance, billing-payment-webhook) are given the
// service-token key; without it the check is off.
func checkUsers(svc *billing.Service, rdb *redis.Client, r *process.Resources) error {
	var cfg usersConfig
	if err := config.Load(r.Env, &cfg); err != nil {
		return err
	}
	if cfg.ServiceTokenKey == "" {
		return nil
	}
	priv, err := servicetoken.ParsePrivateKey(cfg.ServiceTokenKey)
	if err != nil {
		return fmt.Errorf("billing: CLOUDPHONE_SERVICE_TOKEN_KEY: %w", err)
	}
	minter := servicetoken.NewMinter(servicetoken.ContextBilling, priv, servicetoken.MinterOptions{Redis: rdb,
		Log: r.Log.With("context", "billing"), KeyPrefix: cfg.RedisPrefix + servicetoken.DefaultKeyPrefix})
	users, err := billing.NewUsersClient(cfg.UserURL, servicetoken.Client(minter, servicetoken.ContextUser))
	if err != nil {
		return err
	}
	svc.CheckUsers(users)
	return nil
}
