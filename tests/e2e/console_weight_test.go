package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
)

// consoleWeightBudget is the most the phones page may transfer, page, script,
// style, icon and API answers together, on a first visit.
const consoleWeightBudget = 100 << 10

// TestConsolePhonesPageWithFiftyPhonesStaysLight opens the phones page of a
// user with 50 phones in Chromium: everything it loads comes from the
// platform's own origin and weighs less than consoleWeightBudget. It logs the
// page's first contentful paint, when the 50 rows are shown and the weight,
// the figures make bench prints.
func TestConsolePhonesPageWithFiftyPhonesStaysLight(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	p := startDevicePlatform(t, nil)
	aliceID, alice := p.deviceToken(t, "alice")
	p.fund(t, aliceID, 10_000_000)
	p.publish(t, userevents.EventQuotaGrantRequested, "/cloudphone/billing/e2e", "weight-grant", userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: "weight-grant", UserID: aliceID, PlanID: "weight",
		Limits: userevents.Limits{MaxDevices: 60, MaxRunningDevices: 60, MaxCPUCores: 60, MaxMemoryMB: 60 << 10, MaxStorageGB: 1 << 10, DeviceMaxCPUCores: 1, DeviceMaxMemoryMB: 1024}})
	eventually(t, 10*time.Second, "the grant of 60 phones", func() bool {
		var q user.Quota
		return call(t, "GET", p.base+"/api/v1/quotas/me", nil, &q, deviceBearer(alice)...) == 200 && q.Limits.MaxDevices >= 60
	})
	for i := range 50 {
		var d device.Device
		if st := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": fmt.Sprintf("phone-%02d", i), "cpu_cores": 1, "memory_mb": 512},
			&d, deviceBearer(alice)...); st != http.StatusAccepted {
			t.Fatalf("create phone %d: %d", i, st)
		}
		if i%2 == 0 {
			p.report(t, deviceevents.EventRuntimeStarted, d.ID, time.Now())
		}
	}

	ctx := browser(t)
	b := newTab(t, ctx, p.base, "alice")
	b.logIn("alice", "correct horse battery")
	b.open("/console/phones")
	b.wait("50 phones listed", `document.querySelectorAll("#phones tbody tr").length === 50`, 20*time.Second)
	listedMS := eval[float64](b, `performance.now()`)
	b.screenshot("fifty-phones")
	fcpMS := eval[float64](b, `(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`)
	// Bytes on a first visit: each body as sent (encodedBodySize is known for
	// cached assets too) or, where larger, what was transferred with headers.
	weight := eval[struct {
		Bytes   float64  `json:"bytes"`
		Count   int      `json:"count"`
		Foreign []string `json:"foreign"`
	}](b, `(function(){
		var all = performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"));
		var out = {bytes: 0, count: all.length, foreign: []};
		all.forEach(function (e) {
			out.bytes += Math.max(e.transferSize || 0, e.encodedBodySize || 0);
			if (new URL(e.name).origin !== location.origin) out.foreign.push(e.name);
		});
		return out;
	})()`)
	t.Logf("figure: console phones page with 50 phones: first contentful paint %.0f ms, 50 rows shown by %.0f ms (seen by 100 ms polling), %d requests, %.1f KB",
		fcpMS, listedMS, weight.Count, weight.Bytes/1024)
	if len(weight.Foreign) > 0 {
		t.Errorf("the page loaded from other origins: %s", strings.Join(weight.Foreign, ", "))
	}
	if fcpMS <= 0 {
		t.Errorf("no first contentful paint recorded")
	}
	if weight.Bytes >= consoleWeightBudget {
		t.Errorf("the phones page with 50 phones weighs %.1f KB, over the %d KB budget", weight.Bytes/1024, consoleWeightBudget>>10)
	}
	b.noError("phones page")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
