package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
)

// Concurrent creates through the public API never pass the quota, and
// devices of many users never share a port; a full pool is a clear 503 that
// leaves no quota behind.
func TestDeviceConcurrentCreatesKeepQuotaAndPortsExact(t *testing.T) {
	t.Parallel()
	p := startDevicePlatform(t, map[string]string{"DEVICE_PORT_RANGE": "26100-26104"})
	aliceID, alice := p.deviceToken(t, "alice")
	p.fund(t, aliceID, 100000)
	grant := userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: "order-device-e2e", UserID: aliceID, PlanID: "pro",
		Limits: userevents.Limits{MaxDevices: 2, MaxRunningDevices: 2, MaxCPUCores: 8, MaxMemoryMB: 8192, MaxStorageGB: 64, DeviceMaxCPUCores: 4, DeviceMaxMemoryMB: 4096}}
	p.publish(t, userevents.EventQuotaGrantRequested, "/cloudphone/billing/e2e", grant.GrantID, grant)
	eventually(t, 10*time.Second, "the grant never reached alice's quota", func() bool {
		var q user.Quota
		call(t, "GET", p.base+"/api/v1/quotas/me", nil, &q, deviceBearer(alice)...)
		return q.Limits.MaxDevices == 3
	})

	body := map[string]any{"name": "p", "cpu_cores": 1, "memory_mb": 512}
	const tries = 20
	codes := make([]int, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() { codes[i] = call(t, "POST", p.base+"/api/v1/devices", body, nil, deviceBearer(alice)...) })
	}
	wg.Wait()
	accepted := 0
	for _, c := range codes {
		switch c {
		case http.StatusAccepted:
			accepted++
		case http.StatusForbidden:
		default:
			t.Errorf("create answered %d, want 202 or 403", c)
		}
	}
	if accepted != 3 {
		t.Fatalf("%d of %d concurrent creates accepted, want exactly 3", accepted, tries)
	}
	if u := p.usage(t, alice); u.Devices != 3 || u.RunningDevices != 3 || u.CPUCores != 3 || u.MemoryMB != 1536 {
		t.Fatalf("usage = %+v, want exactly 3 devices", u)
	}

	tokens := make([]string, 4)
	for i := range tokens {
		var id string
		id, tokens[i] = p.deviceToken(t, fmt.Sprintf("user%d", i))
		p.fund(t, id, 100000)
	}
	answers := make([]device.Device, len(tokens))
	codes = make([]int, len(tokens))
	for i := range tokens {
		wg.Go(func() {
			codes[i] = call(t, "POST", p.base+"/api/v1/devices", body, &answers[i], deviceBearer(tokens[i])...)
		})
	}
	wg.Wait()
	ports := map[int]bool{}
	var list struct {
		Devices []device.Device `json:"devices"`
	}
	call(t, "GET", p.base+"/api/v1/devices", nil, &list, deviceBearer(alice)...)
	for _, d := range list.Devices {
		ports[d.ADBPort] = true
	}
	got, full := 0, 0
	for i, c := range codes {
		switch c {
		case http.StatusAccepted:
			got++
			if ports[answers[i].ADBPort] || answers[i].ADBPort < 26100 || answers[i].ADBPort > 26104 {
				t.Errorf("port %d handed out twice or out of the pool", answers[i].ADBPort)
			}
			ports[answers[i].ADBPort] = true
		case http.StatusServiceUnavailable:
			full++
			if u := p.usage(t, tokens[i]); u != (user.Usage{}) {
				t.Errorf("a user refused for a full pool holds quota %+v", u)
			}
		default:
			t.Errorf("create answered %d, want 202 or 503", c)
		}
	}
	if got != 2 || full != 2 || len(ports) != 5 {
		t.Fatalf("%d created, %d refused, %d distinct ports; want 2, 2, 5", got, full, len(ports))
	}
}
