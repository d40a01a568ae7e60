// Command cloudphone runs the whole platform on one machine: every function
// behind one port, the embedded broker, and a private Postgres and Redis
// unless DATABASE_URL and REDIS_URL point elsewhere. Ctrl-C stops it cleanly.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cloudphone:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	src := config.FromEnvironment()
	var cfg local.Config
	if err := config.Load(src, &cfg); err != nil {
		return err
	}
	log := function.Logger(src)
	return local.Run(ctx, local.Options{
		Config:    cfg,
		Env:       src,
		Entries:   catalog.Entries(),
		Log:       log,
		Bootstrap: userfunctions.Bootstrap(os.Stdout),
		Listening: func(url string) {
			fmt.Printf(`
cloudphone is running at %[1]s
  public API        %[1]s/api/v1/...          (e.g. curl -X POST %[1]s/api/v1/auth/register)
  OpenFaaS-style    %[1]s/function/<name>     (faas-cli invoke --gateway %[1]s <name>)
  broker ingress    %[1]s/broker/cloudphone   (POST CloudEvents here)
  health            %[1]s/health/readiness
  metrics           %[1]s/metrics
Press Ctrl-C to stop.

`, url)
		},
	})
}
