package admindeadletters

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.HTTPEntry(function.Spec{
	Name: Name, Context: scheduler.ContextName,
	Routes: Routes, API: API, Redrives: true,
	MaxScale: 2, Concurrency: 20, TimeoutSeconds: 30,
	Secrets: []string{function.SecretUserTokenPublicKey},
}, build)

// Config is the function's configuration.
type Config struct {
	// UserTokenPublicKey checks the administrators' access tokens.
	UserTokenPublicKey string `env:"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY" secret:"user-token-public-key"`
}

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	var cfg Config
	if err := config.Load(r.Env, &cfg); err != nil {
		return nil, err
	}
	if cfg.UserTokenPublicKey == "" {
		return nil, errors.New("admin-dead-letters: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY (secret user-token-public-key) is not set")
	}
	pub, err := auth.ParsePublicKey(cfg.UserTokenPublicKey)
	if err != nil {
		return nil, fmt.Errorf("admin-dead-letters: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY: %w", err)
	}
	rdb, err := r.Redis(ctx)
	if err != nil {
		return nil, err
	}
	pool, err := r.Postgres(ctx, scheduler.Database, scheduler.MigrationSets()...)
	if err != nil {
		return nil, err
	}
	return New(scheduler.NewDeadLetters(pool), auth.NewVerifier(pub, auth.NewRedisRevocations(rdb)), r.Log), nil
}
