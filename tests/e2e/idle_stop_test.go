package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/events"
)

// TestAnIdlePhoneIsStoppedAndAConnectedOneKeepsRunning runs two real phones
// with the free tier's 30 idle minutes made 3 s long: alice never connects
// to hers, bob holds an ADB session through the gateway. Alice's phone is
// stopped with reason idle and she is told; bob's keeps running.
func TestAnIdlePhoneIsStoppedAndAConnectedOneKeepsRunning(t *testing.T) {
	t.Parallel()
	p, _ := startRuntimePlatform(t, map[string]string{"DEVICE_PORT_RANGE": "26400-26499", "DEVICE_IDLE_MINUTE": "100ms"})
	aliceID, alice := p.deviceToken(t, "alice")
	bobID, bob := p.deviceToken(t, "bob")
	p.fund(t, aliceID, 100000)
	p.fund(t, bobID, 100000)

	create := func(token, name string) device.Device {
		t.Helper()
		var d device.Device
		if st := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": name, "cpu_cores": 1, "memory_mb": 512},
			&d, deviceBearer(token)...); st != http.StatusAccepted {
			t.Fatalf("create %s: %d", name, st)
		}
		return d
	}
	idle, connected := create(alice, "idle"), create(bob, "connected")
	p.awaitStateWithin(t, alice, idle.ID, device.StateRunning, 2*time.Minute)
	if d := p.awaitStateWithin(t, bob, connected.ID, device.StateRunning, 2*time.Minute); d.IdleMinutes != 30 {
		t.Fatalf("idle_minutes = %d, want the free tier's 30", d.IdleMinutes)
	}

	var conn device.Connection
	if st := call(t, "GET", p.base+"/api/v1/devices/"+connected.ID+"/connection", nil, &conn, deviceBearer(bob)...); st != 200 {
		t.Fatalf("connection: %d", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, conn.URL, nil)
	if err != nil {
		t.Fatalf("open bob's ADB session: %v", err)
	}
	defer ws.Close(websocket.StatusNormalClosure, "")

	// The scheduled tick comes every minute; the test sends its own.
	tick := func() {
		p.publish(t, deviceevents.EventIdleCheckRequested, "/test/ping", "idle", events.Tick{ScheduledAt: time.Now()})
	}
	started := time.Now()
	eventually(t, 30*time.Second, "alice's idle phone stopped", func() bool {
		tick()
		var d device.Device
		call(t, "GET", p.base+"/api/v1/devices/"+idle.ID, nil, &d, deviceBearer(alice)...)
		return d.State == device.StateStopped && d.StopReason == deviceevents.ReasonIdle
	})
	if waited := time.Since(started); waited < 2*time.Second {
		t.Fatalf("stopped after %s, before its 3 s idle limit", waited)
	}
	time.Sleep(time.Second)
	tick()
	time.Sleep(time.Second)
	var d device.Device
	call(t, "GET", p.base+"/api/v1/devices/"+connected.ID, nil, &d, deviceBearer(bob)...)
	if d.State != device.StateRunning {
		t.Fatalf("bob's connected phone is %s (%q), want running", d.State, d.StopReason)
	}

	eventually(t, 10*time.Second, "alice told of the idle stop", func() bool {
		var page struct {
			Items []struct {
				Type string `json:"type"`
				Body string `json:"body"`
				Data struct {
					Reason string `json:"reason"`
				} `json:"data"`
			} `json:"items"`
		}
		call(t, "GET", p.base+"/api/v1/notifications", nil, &page, deviceBearer(alice)...)
		for _, n := range page.Items {
			if n.Type == "device.stopped" && n.Data.Reason == deviceevents.ReasonIdle && strings.Contains(n.Body, idle.ID) {
				return true
			}
		}
		return false
	})
}
