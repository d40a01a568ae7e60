package devicequotastop_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/devicequotastop"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestQuotaRevokedStopsWhatRunsBeyondTheLimitLeft(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	fn := devicequotastop.New(env.Service, logging.Discard())
	a := env.User(t, "dora")
	ctx := context.Background()
	d, err := env.Service.Create(ctx, a.Principal, device.CreateRequest{Name: "p", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, time.Now()))
	var q userevents.QuotaRevoked
	q.SchemaVersion, q.UserID, q.Limits.MaxRunningDevices = 1, a.ID, 0
	ev, err := events.New(ctx, userevents.EventQuotaRevoked, "/cloudphone/user/user-quota-grants", "grant-1", q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	got, _ := env.Service.Get(ctx, a.Principal, d.ID)
	if got.State != device.StateStopping || got.StopReason != deviceevents.ReasonQuotaReduced {
		t.Fatalf("device = %+v", got)
	}
	unknown, _ := events.New(ctx, userevents.EventQuotaRevoked, "/x", "grant-2", map[string]any{"grant_id": "grant-2"})
	if _, err := fn.Handle(ctx, unknown); err != nil {
		t.Fatalf("a revoke naming no user: %v, want it acknowledged", err)
	}
}
