// Command devenv runs a command against private Postgres, Redis and S3 servers:
//
//	go run ./infra/cmd/devenv [-dir .data/test] -- go test ./...
//
// When DATABASE_URL is unset it starts a private Postgres (fsync off: the
// data is throwaway) with its data in DIR/postgres; when REDIS_URL is unset,
// a private Redis with its data in DIR/redis (an embedded in-memory one when
// the machine has no redis-server); when S3_ENDPOINT is unset, a private
// S3-compatible server (services.StartS3) with its data in DIR/s3; when
// SMTP_URL is unset, an SMTP catcher keeping every message in DIR/mail
// (exported as CLOUDPHONE_MAIL_DIR). It exports DATABASE_URL, REDIS_URL, the
// S3_* settings and SMTP_URL to the command, runs
// it with stdin, stdout and stderr passed through, stops the servers when the
// command ends or devenv gets SIGINT or SIGTERM (which it passes on to the
// command), and exits with the command's exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudphone/cloudphone/infra/local/services"
)

func main() {
	services.RunS3Gateway()
	os.Exit(run(os.Args[1:], os.Environ()))
}

// run returns the process exit code: the command's, 2 for a usage error, 1
// when the servers could not be started, 128+N when signal N ended start-up.
func run(args, environ []string) int {
	flags := flag.NewFlagSet("devenv", flag.ContinueOnError)
	dir := flags.String("dir", ".data/test", "directory for the private servers' data")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: devenv [-dir DIR] -- COMMAND [ARGS...]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	argv := flags.Args()
	if len(argv) == 0 {
		flags.Usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Signals are caught from here on so that servers are always stopped.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// A signal cancels ctx (aborting start-up) and is passed on to the
	// command once it runs.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var child atomic.Pointer[os.Process]
	go func() {
		for s := range sigs {
			cancel(signalError{s.(syscall.Signal)})
			if p := child.Load(); p != nil {
				_ = p.Signal(s)
			}
		}
	}()

	env, stop, err := startServers(ctx, *dir, environ, log)
	defer stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "devenv: %v\n", err)
		return exitCode(ctx, 1)
	}
	if ctx.Err() != nil {
		return exitCode(ctx, 1)
	}
	return runCommand(ctx, argv, env, &child)
}

// signalError is the cause of a cancellation by a signal.
type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string { return "got " + e.sig.String() }

// exitCode is 128+signal when a signal cancelled ctx, otherwise code.
func exitCode(ctx context.Context, code int) int {
	var s signalError
	if errors.As(context.Cause(ctx), &s) {
		return 128 + int(s.sig)
	}
	return code
}

// startServers starts what environ does not already point at and returns the
// child's environment and a function that stops the servers.
func startServers(ctx context.Context, dir string, environ []string, log *slog.Logger) (env []string, stop func(), err error) {
	var stops []func(context.Context) error
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](sctx); err != nil {
				fmt.Fprintf(os.Stderr, "devenv: %v\n", err)
			}
		}
	}
	env = slices.Clip(environ)
	var started []string
	if lookup(environ, "DATABASE_URL") == "" {
		pg, err := services.StartPostgres(ctx, filepath.Join(dir, "postgres"), services.PostgresOptions{Fsync: false}, log)
		if err != nil {
			return nil, stop, fmt.Errorf("start postgres: %w", err)
		}
		stops = append(stops, pg.Stop)
		env = append(env, "DATABASE_URL="+pg.URL())
		started = append(started, "postgres at "+pg.URL())
	}
	if lookup(environ, "REDIS_URL") == "" {
		rs, err := services.StartRedis(ctx, filepath.Join(dir, "redis"), services.RedisOptions{}, log)
		if err != nil {
			return nil, stop, fmt.Errorf("start redis: %w", err)
		}
		stops = append(stops, rs.Stop)
		env = append(env, "REDIS_URL="+rs.URL())
		kind := "redis-server"
		if rs.Embedded() {
			kind = "embedded redis, in memory"
		}
		started = append(started, fmt.Sprintf("redis at %s (%s)", rs.URL(), kind))
	}
	if lookup(environ, "S3_ENDPOINT") == "" {
		s3, err := services.StartS3(ctx, filepath.Join(dir, "s3"), services.S3Options{}, log)
		if err != nil {
			return nil, stop, fmt.Errorf("start s3: %w", err)
		}
		stops = append(stops, s3.Stop)
		env = append(env, s3.Env()...)
		started = append(started, "s3 at "+s3.Config().Endpoint)
	}
	if lookup(environ, "SMTP_URL") == "" {
		mail, err := services.StartSMTPCatcher(ctx, filepath.Join(dir, "mail"), log)
		if err != nil {
			return nil, stop, fmt.Errorf("start smtp catcher: %w", err)
		}
		stops = append(stops, mail.Stop)
		env = append(env, "SMTP_URL="+mail.URL(), "CLOUDPHONE_MAIL_DIR="+mail.Dir())
		started = append(started, "smtp catcher at "+mail.URL())
	}
	if len(started) == 0 {
		fmt.Fprintln(os.Stderr, "devenv: using DATABASE_URL, REDIS_URL, S3_ENDPOINT and SMTP_URL from the environment, started nothing")
	} else {
		fmt.Fprintf(os.Stderr, "devenv: started %s (data in %s)\n", strings.Join(started, ", "), dir)
	}
	return env, stop, nil
}

// runCommand runs argv with env, passing on SIGINT and SIGTERM, and returns
// its exit code (128+signal when a signal ended it, 127 when it could not be
// started).
func runCommand(ctx context.Context, argv, env []string, child *atomic.Pointer[os.Process]) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "devenv: %v\n", err)
		return 127
	}
	child.Store(cmd.Process)
	var s signalError
	if errors.As(context.Cause(ctx), &s) { // a signal that came before Store
		_ = cmd.Process.Signal(s.sig)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "devenv: %v\n", err)
	return 1
}

// lookup returns the last value of key in environ, as the environment of a
// child process would see it.
func lookup(environ []string, key string) string {
	for _, kv := range slices.Backward(environ) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
