package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user"
)

// No phone runs for free: it is created or started only when the balance
// covers an hour of it (409 insufficient_funds otherwise, nothing made), and
// its usage is charged when it stops, so a stop and a start between two
// charging runs is paid for.
func TestAPhoneStartsOnlyWhenTheBalanceCoversAnHourAndIsChargedWhenItStops(t *testing.T) {
	t.Parallel()
	p := startDevicePlatform(t, nil)
	bobID, bob := p.deviceToken(t, "bob")
	size := map[string]any{"name": "pixel", "cpu_cores": 1, "memory_mb": 1024} // 50 + 10 + 5 = 65 an hour

	var refused map[string]map[string]string
	if st := call(t, "POST", p.base+"/api/v1/devices", size, &refused, deviceBearer(bob)...); st != http.StatusConflict ||
		refused["error"]["code"] != "insufficient_funds" {
		t.Fatalf("create with no balance: %d %v, want 409 insufficient_funds", st, refused)
	}
	var list struct {
		Devices []device.Device `json:"devices"`
	}
	if call(t, "GET", p.base+"/api/v1/devices", nil, &list, deviceBearer(bob)...); len(list.Devices) != 0 {
		t.Fatalf("a refused create left devices: %+v", list.Devices)
	}
	if u := p.usage(t, bob); u != (user.Usage{}) {
		t.Fatalf("a refused create holds quota: %+v", u)
	}

	p.fund(t, bobID, 65) // exactly an hour
	var d device.Device
	if st := call(t, "POST", p.base+"/api/v1/devices", size, &d, deviceBearer(bob)...); st != http.StatusAccepted {
		t.Fatalf("create with an hour's balance: %d %+v", st, d)
	}
	t0 := time.Now()
	p.report(t, deviceevents.EventRuntimeCreated, d.ID, t0)
	p.report(t, deviceevents.EventRuntimeStarted, d.ID, t0)
	p.awaitState(t, bob, d.ID, device.StateRunning)
	if st := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/stop", nil, nil, deviceBearer(bob)...); st != http.StatusAccepted {
		t.Fatalf("stop: %d", st)
	}
	p.report(t, deviceevents.EventRuntimeStopped, d.ID, t0.Add(90*time.Second)) // two started minutes: 3
	p.awaitState(t, bob, d.ID, device.StateStopped)

	// Charged at the stop, long before the 10-minute charging run.
	eventually(t, 10*time.Second, "the stopped phone's usage was not charged", func() bool {
		var b billing.Balance
		call(t, "GET", p.base+"/api/v1/balance", nil, &b, deviceBearer(bob)...)
		return b.Balance == 62
	})
	refused = nil
	if st := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/start", nil, &refused, deviceBearer(bob)...); st != http.StatusConflict ||
		refused["error"]["code"] != "insufficient_funds" {
		t.Fatalf("start with less than an hour left: %d %v, want 409 insufficient_funds", st, refused)
	}
	if got := p.awaitState(t, bob, d.ID, device.StateStopped); got.State != device.StateStopped {
		t.Fatalf("a refused start changed the device: %+v", got)
	}

	p.fund(t, bobID, 1000)
	if st := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/start", nil, nil, deviceBearer(bob)...); st != http.StatusAccepted {
		t.Fatalf("start once funded: %d", st)
	}
}
