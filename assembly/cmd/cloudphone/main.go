// Command cloudphone runs the whole platform on one machine: every function
// behind one port, the embedded broker, and a private Postgres, Redis and
// S3-compatible store unless DATABASE_URL, REDIS_URL and S3_ENDPOINT point
// elsewhere. Ctrl-C stops it cleanly.
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
	"github.com/cloudphone/cloudphone/infra/local/services"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
)

func main() {
	services.RunS3Gateway()
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
  OpenFaaS gateway  %[1]s/function/<name>     (faas-cli list --gateway %[1]s; faas-cli invoke reads the body from stdin:
                    echo '{"login":"alice","password":"..."}' | faas-cli invoke auth-login --gateway %[1]s)
  broker ingress    %[1]s/broker/cloudphone   (CloudEvents with a sender token, see "Events" in the README)
  health            %[1]s/health/readiness
  metrics           %[2]s
Press Ctrl-C to stop.

`, url, metricsAt(src))
		},
	})
}

// metricsAt says where /metrics is served: only on CLOUDPHONE_METRICS_ADDR,
// never on the public port.
func metricsAt(src config.Source) string {
	if addr, ok := src.Lookup("CLOUDPHONE_METRICS_ADDR"); ok && addr != "" {
		return "http://" + addr + "/metrics"
	}
	return "not served (set CLOUDPHONE_METRICS_ADDR, e.g. 127.0.0.1:9090)"
}
