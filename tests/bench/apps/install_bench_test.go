package apps_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
	"github.com/cloudphone/cloudphone/shared/config"
)

const benchAdminPassword = "admin password for the install bench"

// BenchmarkUploadToInstalled runs the whole platform (every function of the
// catalog, device-runtime on the machine's Docker engine with the phone
// stand-in) and measures, for a small APK (a few KiB, built with aapt and
// apksigner), the time from the start of POST /api/v1/apps until GET
// /api/v1/devices/{id}/apps shows it installed after POST
// /api/v1/devices/{id}/apps: upload, parse, the install command through the
// outbox and broker, the download from S3, ADB push, pm install, pm list
// packages, the installed fact back through the broker. Each run installs a
// new version code of the same package on the same running phone.
func BenchmarkUploadToInstalled(b *testing.B) {
	apptest.Need(b)
	ctx := context.Background()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	defer docker.Close()
	if err := standinimage.Ensure(ctx, docker); err != nil {
		b.Fatalf("build the phone stand-in: %v", err)
	}
	dir := b.TempDir()
	apks := make([]string, b.N)
	for i := range apks {
		d := filepath.Join(dir, fmt.Sprint(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if apks[i], err = apptest.BuildIn(d, apptest.Spec{Package: "org.example.benchinstall", VersionCode: int64(i + 1)}); err != nil {
			b.Fatal(err)
		}
	}

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	prefix := "bench_" + hex.EncodeToString(rnd[:]) + "_"
	defer dropDatabases(b, prefix)
	defer removeInstance(b, docker, prefix)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"CLOUDPHONE_DATABASE_PREFIX": prefix, "CLOUDPHONE_REDIS_PREFIX": prefix,
		"CLOUDPHONE_DEVICE_IMAGE": standinimage.Tag, "DEVICE_PORT_RANGE": "26900-26949",
	}
	for _, k := range []string{"S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_REGION"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	p, err := local.Start(ctx, local.Options{
		Config: local.Config{Addr: addr, DataDir: filepath.Join(dir, "data"), DatabaseURL: os.Getenv("DATABASE_URL"),
			RedisURL: os.Getenv("REDIS_URL"), TriggersDir: "../../../triggers", AdminPassword: benchAdminPassword},
		Env: config.FromMap(env), Entries: catalog.Entries(),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bootstrap: userfunctions.Bootstrap(io.Discard),
	})
	if err != nil {
		b.Fatalf("start the platform: %v", err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	base := p.URL()

	userID := jsonCall(b, "POST", base+"/api/v1/auth/register", "", map[string]string{
		"username": "bencher", "email": "bencher@example.com", "password": "correct horse battery"}, 201)["id"].(string)
	tok := jsonCall(b, "POST", base+"/api/v1/auth/login", "", map[string]string{"login": "bencher", "password": "correct horse battery"}, 200)["access_token"].(string)
	admin := jsonCall(b, "POST", base+"/api/v1/auth/login", "", map[string]string{"login": "admin", "password": benchAdminPassword}, 200)["access_token"].(string)
	jsonCall(b, "POST", base+"/api/v1/admin/users/"+userID+"/credit", admin, map[string]any{"amount": 100000, "reason": "bench"}, 201)
	id := jsonCall(b, "POST", base+"/api/v1/devices", tok, map[string]any{"name": "bench", "cpu_cores": 1, "memory_mb": 512}, 202)["id"].(string)
	deadline := time.Now().Add(2 * time.Minute)
	for jsonCall(b, "GET", base+"/api/v1/devices/"+id, tok, nil, 200)["state"] != string(device.StateRunning) {
		if time.Now().After(deadline) {
			b.Fatal("the phone never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}

	var times []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		a := apptest.Uploaded(b, base, tok, apks[i])
		jsonCall(b, "POST", base+"/api/v1/devices/"+id+"/apps", tok, map[string]string{"app_id": a.ID}, 202)
		for !installed(b, base, tok, id, a.VersionCode) {
			if time.Since(start) > time.Minute {
				b.Fatalf("version %d never installed", a.VersionCode)
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	var sum time.Duration
	for _, d := range times {
		sum += d
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(times)), "ms-mean")
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "ms-median")
	fmt.Printf("small APK, %d runs: upload → installed on the stand-in: median %s, min %s, max %s\n",
		len(times), times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
}

// installed reports whether the device lists version of the bench's package
// as installed (a failure ends the benchmark).
func installed(b *testing.B, base, tok, id string, version int64) bool {
	var l device.InstallationList
	raw := rawCall(b, "GET", base+"/api/v1/devices/"+id+"/apps", tok, nil, 200)
	if err := json.Unmarshal(raw, &l); err != nil {
		b.Fatal(err)
	}
	for _, in := range l.Apps {
		if in.VersionCode == version {
			if in.State == device.InstallFailed {
				b.Fatalf("install failed: %s", in.Reason)
			}
			return in.State == device.InstallInstalled
		}
	}
	return false
}

func rawCall(b *testing.B, method, url, tok string, body any, want int) []byte {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Fatalf("%s %s = %d %s", method, url, resp.StatusCode, raw)
	}
	return raw
}

func jsonCall(b *testing.B, method, url, tok string, body any, want int) map[string]any {
	var out map[string]any
	if err := json.Unmarshal(rawCall(b, method, url, tok, body, want), &out); err != nil {
		b.Fatal(err)
	}
	return out
}

func removeInstance(b *testing.B, docker *client.Client, instance string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deviceruntime.LabelInstance+"="+instance))})
	if err != nil {
		b.Logf("list the bench's phones: %v", err)
		return
	}
	for _, c := range list {
		_ = docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
}

func dropDatabases(b *testing.B, prefix string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		b.Logf("drop the bench's databases: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		_, _ = conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}
