package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
	"github.com/cloudphone/cloudphone/shared/config"
)

// startRuntimePlatform runs the whole catalog, device-runtime included, on
// the machine's Docker engine with the phone stand-in image. The phones it
// makes carry the platform's instance label (its database prefix) and are
// removed when the test ends.
func startRuntimePlatform(t *testing.T, extra map[string]string) (devicePlatform, *client.Client) {
	t.Helper()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := docker.Ping(ctx); err != nil {
		t.Fatalf("this test needs a Docker engine: %v", err)
	}
	if err := standinimage.Ensure(ctx, docker); err != nil {
		t.Fatalf("build the phone stand-in: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// Phones publish their ADB ports on this host: each platform needs a
	// range of its own, and one below Linux's ephemeral ports (32768-60999,
	// where the default range lies), or an outgoing connection of another
	// test may hold a phone's port ("address already in use").
	if _, ok := extra["DEVICE_PORT_RANGE"]; !ok {
		t.Fatal("startRuntimePlatform needs a DEVICE_PORT_RANGE of the test's own, below 32768")
	}
	e := newEnv(t)
	t.Cleanup(func() { removeInstance(t, docker, e.prefix) }) // runs after the platform stopped
	e.extra = map[string]string{
		"CLOUDPHONE_USER_URL":       "http://" + addr,
		"CLOUDPHONE_DEVICE_IMAGE":   standinimage.Tag,
		"DEVICE_RECONCILE_INTERVAL": "3s",
		"DEVICE_STOP_TIMEOUT":       "2s",
	}
	for k, v := range extra {
		e.extra[k] = v
	}
	p, err := local.Start(ctx, local.Options{
		Config: local.Config{
			Addr: addr, DataDir: e.dataDir, DatabaseURL: mustEnv(t, "DATABASE_URL"), RedisURL: mustEnv(t, "REDIS_URL"),
			TriggersDir: "../../triggers", AdminPassword: deviceAdminPassword,
		},
		Env:       config.FromMap(e.config()),
		Entries:   catalog.Entries(),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bootstrap: userfunctions.Bootstrap(io.Discard),
	})
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	r := &running{Platform: p}
	t.Cleanup(func() {
		if !r.stopped {
			_ = p.Shutdown(context.Background())
		}
	})
	t.Cleanup(func() { _ = docker.Close() })
	return devicePlatform{running: r, base: p.URL(), prefix: e.prefix}, docker
}

// removeInstance force-removes every phone container of the instance, then
// its phones' network.
func removeInstance(t *testing.T, docker *client.Client, instance string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deviceruntime.LabelInstance+"="+instance))})
	if err != nil {
		t.Errorf("list the test's containers: %v", err)
		return
	}
	for _, c := range list {
		if err := docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Errorf("remove container %s: %v", c.ID, err)
		}
	}
	nets, err := docker.NetworkList(ctx, network.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", deviceruntime.LabelInstance+"="+instance))})
	if err != nil {
		t.Errorf("list the test's networks: %v", err)
		return
	}
	for _, n := range nets {
		if err := docker.NetworkRemove(ctx, n.ID); err != nil {
			t.Errorf("remove network %s: %v", n.Name, err)
		}
	}
}

// phone returns the device's container, or ok false when there is none.
func phone(t *testing.T, docker *client.Client, id string) (container.InspectResponse, bool) {
	t.Helper()
	ci, err := docker.ContainerInspect(context.Background(), deviceruntime.ContainerName(id))
	if client.IsErrNotFound(err) {
		return ci, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return ci, true
}

func TestRuntimeRunsADeviceOnDockerThroughThePublicAPI(t *testing.T) {
	t.Parallel()
	p, docker := startRuntimePlatform(t, map[string]string{"DEVICE_PORT_RANGE": "26000-26099"})
	aliceID, alice := p.deviceToken(t, "alice")
	p.fund(t, aliceID, 100000)

	var d device.Device
	if status := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": "pixel", "cpu_cores": 1, "memory_mb": 512},
		&d, deviceBearer(alice)...); status != http.StatusAccepted {
		t.Fatalf("create: %d %+v", status, d)
	}
	created := time.Now()
	d = p.awaitState(t, alice, d.ID, device.StateRunning)
	t.Logf("API create → running in %s", time.Since(created).Round(time.Millisecond))

	ci, ok := phone(t, docker, d.ID)
	if !ok || !ci.State.Running || ci.ID != d.ContainerID {
		t.Fatalf("container: exists=%v, device says %s", ok, d.ContainerID)
	}
	if ci.HostConfig.NanoCPUs != 1e9 || ci.HostConfig.Memory != 512<<20 || ci.Config.Labels[deviceruntime.LabelUserID] != d.UserID {
		t.Fatalf("limits %d/%d, labels %v", ci.HostConfig.NanoCPUs, ci.HostConfig.Memory, ci.Config.Labels)
	}
	var conn device.Connection
	if status := call(t, "GET", p.base+"/api/v1/devices/"+d.ID+"/connection", nil, &conn, deviceBearer(alice)...); status != 200 ||
		conn.ADB != "127.0.0.1:"+strconv.Itoa(d.ADBPort) {
		t.Fatalf("connection: %d %+v", status, conn)
	}
	if err := deviceruntime.ADBHandshake(context.Background(), conn.ADB, 2*time.Second); err != nil {
		t.Fatalf("the phone does not answer ADB at %s: %v", conn.ADB, err)
	}

	if status := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/stop", nil, nil, deviceBearer(alice)...); status != http.StatusAccepted {
		t.Fatalf("stop: %d", status)
	}
	p.awaitState(t, alice, d.ID, device.StateStopped)
	if ci, _ := phone(t, docker, d.ID); ci.State.Running {
		t.Fatal("the container runs while the device is stopped")
	}
	if status := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/start", nil, nil, deviceBearer(alice)...); status != http.StatusAccepted {
		t.Fatalf("start: %d", status)
	}
	p.awaitState(t, alice, d.ID, device.StateRunning)
	if status := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/restart", nil, nil, deviceBearer(alice)...); status != http.StatusAccepted {
		t.Fatalf("restart: %d", status)
	}
	d = p.awaitState(t, alice, d.ID, device.StateRunning)

	// Killed behind the platform's back: error within seconds (events
	// watch), then recreated once by the reconcile loop.
	before, _ := phone(t, docker, d.ID)
	if err := docker.ContainerKill(context.Background(), before.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	failed := p.awaitState(t, alice, d.ID, device.StateError)
	t.Logf("kill → device error in %s: %s", time.Since(killed).Round(time.Millisecond), failed.LastError)
	if time.Since(killed) > 5*time.Second {
		t.Fatalf("the crash took %s to reach the device", time.Since(killed))
	}
	again := p.awaitStateWithin(t, alice, d.ID, device.StateRunning, 45*time.Second)
	if after, ok := phone(t, docker, d.ID); !ok || !after.State.Running || after.ID == before.ID || again.ContainerID != after.ID {
		t.Fatalf("not recreated: running=%v id %s → %s, device says %s", after.State.Running, before.ID, after.ID, again.ContainerID)
	}

	if status := call(t, "DELETE", p.base+"/api/v1/devices/"+d.ID, nil, nil, deviceBearer(alice)...); status != http.StatusAccepted {
		t.Fatalf("delete: %d", status)
	}
	p.awaitState(t, alice, d.ID, device.StateDeleted)
	if _, ok := phone(t, docker, d.ID); ok {
		t.Fatal("the deleted device's container is still there")
	}
	if u := p.usage(t, alice); u.Devices != 0 || u.RunningDevices != 0 {
		t.Fatalf("usage after delete = %+v", u)
	}
}
