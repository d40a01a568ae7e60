// Command function serves one function (FUNCTION=name, one Knative Service
// each) or one context's bundle (FUNCTIONS=a,b,c, one OpenFaaS function per
// context) with the platform's runtime contract.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/assembly/host"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/process"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "function:", err)
		os.Exit(1)
	}
}

func run() error {
	names := os.Getenv("FUNCTIONS")
	if names == "" {
		names = os.Getenv("FUNCTION")
	}
	if names == "" && len(os.Args) > 1 {
		names = os.Args[1]
	}
	if names == "" {
		return fmt.Errorf("set FUNCTION (one function) or FUNCTIONS (a comma-separated bundle)")
	}
	var entries []function.Entry
	for n := range strings.SplitSeq(names, ",") {
		e, ok := catalog.Entry(strings.TrimSpace(n))
		if !ok {
			return fmt.Errorf("no function named %q", n)
		}
		entries = append(entries, e)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	src := config.FromEnvironment()
	log := function.Logger(src).With("functions", names)
	m := metrics.New()
	res, err := process.New(src, log, m, nil)
	if err != nil {
		return err
	}
	defer res.Close()
	host, err := host.NewHost(res, entries)
	if err != nil {
		return err
	}
	return function.ServeContext(ctx, host, src, nil, log, m)
}
