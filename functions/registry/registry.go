// Package registry builds every function of the catalog from the process's
// shared resources. The catalog says what a function is; the registry says how
// to make it. A process (one Knative Service, one OpenFaaS bundle, or the whole
// local platform) asks it for the entries it hosts.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/catalog"
	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/functions/scheduler/deadletter"
	"github.com/cloudphone/cloudphone/functions/scheduler/outboxredrive"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/login"
	"github.com/cloudphone/cloudphone/functions/user/logout"
	"github.com/cloudphone/cloudphone/functions/user/profile"
	"github.com/cloudphone/cloudphone/functions/user/refresh"
	"github.com/cloudphone/cloudphone/functions/user/register"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/platform"
)

// builders makes each catalog function; every catalog entry has one.
var builders = map[string]platform.Builder{
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
	"user-outbox-redrive": func(ctx context.Context, r *platform.Resources) (any, error) {
		if _, err := userPool(ctx, r); err != nil {
			return nil, err
		}
		return outboxredrive.New(r.Relay(user.Database), r.Log), nil
	},
	catalog.DeadLetter: func(ctx context.Context, r *platform.Resources) (any, error) {
		pool, err := r.Postgres(ctx, scheduler.Database, inbox.Migrations, scheduler.Migrations)
		if err != nil {
			return nil, err
		}
		return deadletter.New(scheduler.NewDeadLetters(pool), r.Log), nil
	},
}

// Entries returns every function of the catalog, ready to host.
func Entries() []platform.Entry {
	specs := catalog.All()
	out := make([]platform.Entry, 0, len(specs))
	for _, s := range specs {
		b, ok := builders[s.Name]
		if !ok {
			panic(fmt.Sprintf("registry: catalog function %s has no builder", s.Name))
		}
		out = append(out, platform.Entry{Spec: s, Build: b})
	}
	return out
}

// Entry returns the named function, or false when the catalog has none.
func Entry(name string) (platform.Entry, bool) {
	s, ok := catalog.ByName(name)
	if !ok {
		return platform.Entry{}, false
	}
	b, ok := builders[name]
	return platform.Entry{Spec: s, Build: b}, ok
}

// userPool opens the user context's database (and so starts its outbox relay).
func userPool(ctx context.Context, r *platform.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, user.Database, outbox.Migrations, user.Migrations)
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
		return user.Open(ctx, pool, rdb, cfg, r.Log.With("context", "user"))
	})
	if err != nil {
		return nil, err
	}
	return v.(*user.Service), nil
}

// Bootstrap returns the local platform's first-start step: it creates the
// admin account when there is none, with adminPassword or, when that is empty,
// a generated password printed once to w.
func Bootstrap(w io.Writer) func(ctx context.Context, r *platform.Resources, adminPassword string) error {
	return func(ctx context.Context, r *platform.Resources, adminPassword string) error {
		svc, err := userService(ctx, r)
		if err != nil {
			return err
		}
		generated := adminPassword == ""
		if generated {
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			adminPassword = base64.RawURLEncoding.EncodeToString(b)
		}
		created, err := svc.EnsureAdmin(ctx, adminPassword)
		if err != nil {
			return err
		}
		if created && generated {
			fmt.Fprintf(w, "\nCreated the admin account. Username: admin  Password: %s  (shown once; set CLOUDPHONE_ADMIN_PASSWORD to choose it)\n", adminPassword)
		}
		return nil
	}
}
