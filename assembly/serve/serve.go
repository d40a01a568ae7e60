// Package serve is the main of a function process: it serves the entries it
// is given with the platform's runtime contract until SIGTERM or SIGINT.
// assembly/cmd/function picks its entries from the catalog by name (every
// function linked in, for OpenFaaS bundles); the per-function mains that
// assembly/cmd/mains writes give it one function's Entry, so that binary
// links that function's packages and no other's.
package serve

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cloudphone/cloudphone/assembly/host"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Main serves entries and exits 1 with the error when serving fails.
func Main(entries ...function.Entry) {
	if err := Run(entries); err != nil {
		fmt.Fprintln(os.Stderr, "function:", err)
		os.Exit(1)
	}
}

// Run serves entries until SIGTERM or SIGINT.
func Run(entries []function.Entry) error {
	if len(entries) == 0 {
		return fmt.Errorf("no function to serve")
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Spec.Name
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	src := config.FromEnvironment()
	log := function.Logger(src).With("functions", strings.Join(names, ","))
	m := metrics.New()
	res, err := process.New(src, log, m, nil)
	if err != nil {
		return err
	}
	defer res.Close()
	h, err := host.NewHost(res, entries)
	if err != nil {
		return err
	}
	return function.ServeContext(ctx, h, src, nil, log, m)
}
