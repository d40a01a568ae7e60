package deviceruntime_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
)

func TestCommandsNamingAnImageOrEngineTheOperatorDidNotAllowAreRefusedAndReported(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	// An engine nobody registered: the runtime must not even connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialed atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()

	cases := map[string]struct {
		tweak func(*deviceevents.Command)
		want  string
	}{
		"image not listed":       {func(c *deviceevents.Command) { c.Image = "attacker/miner:latest" }, "image attacker/miner:latest is not allowed"},
		"redroid look-alike":     {func(c *deviceevents.Command) { c.Image = "attacker/redroid:latest" }, "image attacker/redroid:latest is not allowed"},
		"unregistered engine":    {func(c *deviceevents.Command) { c.DockerHost = "tcp://" + ln.Addr().String() }, "is not a registered node's"},
		"unregistered unix path": {func(c *deviceevents.Command) { c.DockerHost = "unix:///run/other.sock" }, "is not a registered node's"},
	}
	for name, tc := range cases {
		id := b.deviceID(strings.ReplaceAll(name, " ", "-"))
		cmd := b.createCommand(id)
		tc.tweak(&cmd)
		b.send(b.rt, command(t, deviceevents.EventCreateRequested, cmd))
		_, failed := b.waitReports(id, deviceevents.EventRuntimeFailed, 1, 30*time.Second)
		if !strings.HasPrefix(failed.Reason, "refused: ") || !strings.Contains(failed.Reason, tc.want) {
			t.Errorf("%s: reason %q, want refused: …%s", name, failed.Reason, tc.want)
		}
		var attempts, kept int
		if err := b.pool.QueryRow(context.Background(), `SELECT attempts, (SELECT count(*) FROM runtime_devices WHERE device_id = $1)
			FROM runtime_commands WHERE device_id = $1`, id).Scan(&attempts, &kept); err != nil {
			t.Fatal(err)
		}
		if attempts != 1 || kept != 0 || len(b.containers(id)) != 0 {
			t.Errorf("%s: %d attempts, %d device rows kept, %d containers; want one attempt and nothing kept", name, attempts, kept, len(b.containers(id)))
		}
	}
	// A start naming another engine for a known device is refused too.
	id := b.deviceID("known")
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(id)))
	b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
	b.send(b.rt, command(t, deviceevents.EventStartRequested, deviceevents.Command{DeviceID: id, DockerHost: "tcp://" + ln.Addr().String()}))
	if _, failed := b.waitReports(id, deviceevents.EventRuntimeFailed, 1, 30*time.Second); !strings.Contains(failed.Reason, "is not a registered node's") {
		t.Fatalf("start on another engine: %q", failed.Reason)
	}
	if _, err := b.rt.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := dialed.Load(); n != 0 {
		t.Fatalf("the runtime connected %d times to an engine nobody registered", n)
	}
}
