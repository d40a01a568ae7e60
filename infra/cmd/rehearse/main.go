// Command rehearse runs the platform on the local Docker engine as a cluster
// runs it (package infra/rehearse): `rehearse up` builds the images, starts
// one container per unit of stack.yml, the broker's and the gateway, prints
// where the platform answers (REHEARSE_ADDR, default 127.0.0.1:8090) and
// runs until SIGINT or SIGTERM, then removes everything it made. `rehearse
// down` removes what a run that did not end cleanly left. `make rehearse`
// runs it under devenv, which gives it private Postgres, Redis, S3 and SMTP
// servers unless DATABASE_URL, REDIS_URL, S3_ENDPOINT and SMTP_URL name
// others.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
	"github.com/cloudphone/cloudphone/infra/rehearse"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rehearse:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "up"
	if len(args) > 0 {
		cmd = args[0]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch cmd {
	case "up":
		return up(ctx)
	case "down":
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return err
		}
		defer cli.Close()
		return rehearse.Down(ctx, cli, runName())
	default:
		return fmt.Errorf("usage: rehearse [up|down]")
	}
}

func runName() string {
	if n := os.Getenv("REHEARSE_RUN"); n != "" {
		return n
	}
	return "rehearsal"
}

func up(ctx context.Context) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	host := map[string]string{}
	for _, k := range []string{"DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_REGION", "SMTP_URL"} {
		host[k] = os.Getenv(k)
	}
	if host["DATABASE_URL"] == "" || host["REDIS_URL"] == "" {
		return fmt.Errorf("DATABASE_URL and REDIS_URL are not set: run it with `make rehearse`, which starts them")
	}
	settings := map[string]string{}
	// Phones are the stand-in unless another image is named; it is built
	// here, as `make phone-standin` does.
	image := os.Getenv("CLOUDPHONE_DEVICE_IMAGE")
	if image == "" {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return err
		}
		err = standinimage.Ensure(ctx, cli)
		cli.Close()
		if err != nil {
			return fmt.Errorf("build the phone stand-in: %w", err)
		}
		image = standinimage.Tag
	}
	settings["CLOUDPHONE_DEVICE_IMAGE"] = image
	for _, kv := range os.Environ() {
		// Further settings for every unit: REHEARSE_SET_<NAME>=value.
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "REHEARSE_SET_") {
			settings[strings.TrimPrefix(k, "REHEARSE_SET_")] = v
		}
	}
	fmt.Fprintln(os.Stderr, "building the images and starting the units (the first build takes a few minutes)...")
	started := time.Now()
	r, err := rehearse.Up(ctx, rehearse.Options{
		Root: root, Run: runName(), Addr: os.Getenv("REHEARSE_ADDR"), Build: true,
		Host: host, Settings: settings, AdminPassword: os.Getenv("CLOUDPHONE_ADMIN_PASSWORD"), Log: log,
	})
	if err != nil {
		return err
	}
	fmt.Printf("\nThe rehearsal answers on %s (%d units, up in %s). Ctrl-C removes it.\n",
		r.URL(), len(r.Units()), time.Since(started).Round(time.Second))
	for _, u := range r.Units() {
		fmt.Printf("  %-32s docker logs %s\n", u.Name, r.Container(u.Name))
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "removing the rehearsal...")
	return r.Close(context.Background())
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find the module root: not inside the cloudphone module")
	}
	return filepath.Dir(mod), nil
}
