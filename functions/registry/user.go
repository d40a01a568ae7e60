package registry

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/scheduler/outboxredrive"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/adminusers"
	"github.com/cloudphone/cloudphone/functions/user/ipbans"
	"github.com/cloudphone/cloudphone/functions/user/login"
	"github.com/cloudphone/cloudphone/functions/user/logout"
	"github.com/cloudphone/cloudphone/functions/user/profile"
	"github.com/cloudphone/cloudphone/functions/user/quotagrants"
	"github.com/cloudphone/cloudphone/functions/user/quotainternal"
	"github.com/cloudphone/cloudphone/functions/user/refresh"
	"github.com/cloudphone/cloudphone/functions/user/register"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/platform"
)

var userBuilders = map[string]platform.Builder{
	"auth-register": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return register.New(svc, r.Log), nil
	},
	"auth-login": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return login.New(svc, r.Log), nil
	},
	"auth-refresh": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return refresh.New(svc, r.Log), nil
	},
	"auth-logout": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return logout.New(svc, svc.Verifier(), r.Log), nil
	},
	"user-profile": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return profile.New(svc, svc.Verifier(), r.Log), nil
	},
	"user-quota-internal": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		var cfg quotainternal.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		v, err := cfg.Verifier()
		if err != nil {
			return nil, err
		}
		return quotainternal.New(svc, v, r.Log), nil
	},
	"user-quota-grants": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return quotagrants.New(svc, r.Log), nil
	},
	"admin-users": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return adminusers.New(svc, svc.Verifier(), r.Log), nil
	},
	"admin-ip-bans": func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		ed, err := r.Edge()
		if err != nil {
			return nil, err
		}
		return ipbans.New(ed.Bans(), svc.Verifier(), r.Log), nil
	},
	"user-outbox-redrive": func(ctx context.Context, r *platform.Resources) (any, error) {
		if _, err := userPool(ctx, r); err != nil {
			return nil, err
		}
		return outboxredrive.New(r.Relay(user.Database), r.Log), nil
	},
}

// userPool opens the user context's database (and so starts its outbox relay).
func userPool(ctx context.Context, r *platform.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, user.Database, outbox.Migrations, inbox.Migrations, user.Migrations)
}

// userService is the user context's Service, made once per process.
func userService(ctx context.Context, r *platform.Resources) (*user.Service, error) {
	v, err := r.Once("service:user", func() (any, error) {
		pool, err := userPool(ctx, r)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		var cfg user.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		revoked, err := r.Revocations(ctx)
		if err != nil {
			return nil, err
		}
		return user.Open(ctx, pool, rdb, cfg, r.Log.With("context", "user"), revoked)
	})
	if err != nil {
		return nil, err
	}
	return v.(*user.Service), nil
}
