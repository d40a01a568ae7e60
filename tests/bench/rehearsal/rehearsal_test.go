// Package rehearsal measures the platform deployed as separate containers
// (infra/rehearse) against the same code run as plain processes: a bundle's
// cold start, and an event's way through the broker.
package rehearsal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/infra/rehearse"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/process"
)

const (
	starts   = 20
	facts    = 20
	unit     = "cloudphone-user"
	password = "admin password for the bench"
)

// BenchmarkRehearsal prints, for the user bundle, docker start → readiness
// 200 of its container beside exec → readiness 200 of the same binary as a
// plain process (p50/p99 over 20 starts each), and a device fact's way from
// the broker's ingress to the user's inbox between containers (through the
// gateway, the broker's container and the notification bundle's) beside the
// same in one process (the local platform).
func BenchmarkRehearsal(b *testing.B) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Ping(ctx); err != nil {
		b.Skipf("no Docker engine: %v", err)
	}
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	prefix, tag := "rhb_"+id+"_", "rehearsal-bench-"+id
	host := map[string]string{}
	for _, k := range []string{"DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_REGION", "SMTP_URL"} {
		host[k] = os.Getenv(k)
	}
	defer dropDatabases(host["DATABASE_URL"], prefix)
	bin := b.TempDir()
	defer removeImages(cli, tag)
	r, err := rehearse.Up(ctx, rehearse.Options{
		Root: "../../..", Run: "rhb-" + id, Addr: "127.0.0.1:0", Tag: tag, Build: true, BinDir: bin,
		Host: host, AdminPassword: password, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: map[string]string{"CLOUDPHONE_DATABASE_PREFIX": prefix, "CLOUDPHONE_REDIS_PREFIX": prefix,
			"DEVICE_PORT_RANGE": "27800-27899"},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())

	// Cold starts of the user bundle's container.
	var inContainer []time.Duration
	for range starts {
		stop := 10
		if err := cli.ContainerStop(ctx, r.Container(unit), container.StopOptions{Timeout: &stop}); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := cli.ContainerStart(ctx, r.Container(unit), container.StartOptions{}); err != nil {
			b.Fatal(err)
		}
		c, err := cli.ContainerInspect(ctx, r.Container(unit))
		if err != nil {
			b.Fatal(err)
		}
		addr := net.JoinHostPort(c.NetworkSettings.Networks["rhb-"+id].IPAddress, "8080")
		if err := awaitReady(addr, time.Minute); err != nil {
			b.Fatal(err)
		}
		inContainer = append(inContainer, time.Since(t0))
	}

	// The same binary as a plain process, with the same configuration.
	var env []string
	var fns string
	for _, u := range r.Units() {
		if u.Name == unit {
			fns = u.Environment["FUNCTIONS"]
		}
	}
	he := r.HostEnv()
	he["FUNCTIONS"] = fns
	he["BROKER_URL"] = r.URL() + "/function/cloudphone-broker"
	for k, v := range he {
		env = append(env, k+"="+v)
	}
	var asProcess []time.Duration
	for range starts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(filepath.Join(bin, "function"))
		cmd.Env = append(slices.Clone(env), "LISTEN_ADDRESS="+addr)
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		err = awaitReady(addr, time.Minute)
		d := time.Since(t0)
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if err != nil {
			b.Fatal(err)
		}
		asProcess = append(asProcess, d)
	}
	fmt.Printf("figure: %s cold start, docker start → readiness 200: p50 %s p99 %s (%d starts)\n", unit, pct(inContainer, 50), pct(inContainer, 99), starts)
	fmt.Printf("figure: %s as a plain process, exec → readiness 200:   p50 %s p99 %s (%d starts)\n", unit, pct(asProcess, 50), pct(asProcess, 99), starts)

	// A device fact through the broker to the inbox: between containers...
	between := factLatency(b, r.URL(), r.URL()+"/function/cloudphone-broker", r.HostEnv())

	// ... and in one process.
	pe := map[string]string{"CLOUDPHONE_DATABASE_PREFIX": prefix + "p_", "CLOUDPHONE_REDIS_PREFIX": prefix + "p_"}
	for _, k := range []string{"S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_REGION", "SMTP_URL"} {
		if host[k] != "" {
			pe[k] = host[k]
		}
	}
	p, err := local.Start(ctx, local.Options{
		Config: local.Config{Addr: "127.0.0.1:0", DataDir: b.TempDir(), DatabaseURL: host["DATABASE_URL"], RedisURL: host["REDIS_URL"],
			TriggersDir: "../../../triggers", AdminPassword: password},
		Env: config.FromMap(pe), Entries: catalog.Entries(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bootstrap: userfunctions.Bootstrap(io.Discard),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	keys := maps.Clone(pe)
	keys["DATABASE_URL"], keys["REDIS_URL"] = host["DATABASE_URL"], host["REDIS_URL"]
	for _, k := range []string{"CLOUDPHONE_SERVICE_TOKEN_KEY", "CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY"} {
		keys[k] = p.Resources().Env.Env[k]
	}
	inOne := factLatency(b, p.URL(), p.URL()+"/broker/cloudphone", keys)
	fmt.Printf("figure: device fact, broker ingress → in the inbox, between containers: p50 %s p99 %s (%d events)\n", pct(between, 50), pct(between, 99), facts)
	fmt.Printf("figure: device fact, broker ingress → in the inbox, in one process:      p50 %s p99 %s (%d events)\n", pct(inOne, 50), pct(inOne, 99), facts)
}

// factLatency signs app.installed facts as the device context, posts each
// to ingress and times it until the user's inbox lists it.
func factLatency(b *testing.B, base, ingress string, env map[string]string) []time.Duration {
	b.Helper()
	res, err := process.New(config.FromMap(env), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	api := base + "/api/v1"
	userID, tok := signUp(b, api)
	var out []time.Duration
	for i := range facts {
		ev, err := events.New(context.Background(), deviceevents.EventAppInstalled, "/cloudphone/device/device-runtime", events.NewID(),
			deviceevents.AppFact{SchemaVersion: 1, DeviceID: events.NewID(), UserID: userID, AppID: events.NewID(),
				Package: fmt.Sprintf("org.example.bench%d", i), VersionCode: 1, At: time.Now().UTC()})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		post(b, res, ingress, ev)
		for n := 0; n < i+1; n = inboxCount(b, api, tok) {
			if time.Since(t0) > time.Minute {
				b.Fatalf("fact %d never reached the inbox", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

func post(b *testing.B, res *process.Resources, ingress string, ev event.Event) {
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), ingress, ev)
	if err != nil {
		b.Fatal(err)
	}
	if err := res.EventSigner.Authorize(req, "device", eventauth.BrokerAudience); err != nil {
		b.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("broker ingress answered %d", resp.StatusCode)
	}
}
