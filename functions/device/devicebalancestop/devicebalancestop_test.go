package devicebalancestop_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/devicebalancestop"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestBalanceExhaustedStopsTheUsersRunningDevice(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	fn := devicebalancestop.New(env.Service, logging.Discard())
	a := env.User(t, "alice")
	ctx := context.Background()
	d, err := env.Service.Create(ctx, a.Principal, device.CreateRequest{Name: "p", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, time.Now()))
	ev, err := events.New(ctx, billingevents.EventBalanceExhausted, "/cloudphone/billing/billing-charge", a.ID,
		billingevents.BalanceExhausted{SchemaVersion: 1, UserID: a.ID, Currency: "CNY", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := fn.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := env.Service.Get(ctx, a.Principal, d.ID)
	if got.State != device.StateStopping || got.StopReason != deviceevents.ReasonInsufficientFunds {
		t.Fatalf("device = %+v", got)
	}
	if n := len(env.Outbox(t, deviceevents.EventStopRequested, d.ID)); n != 1 {
		t.Fatalf("%d stop commands", n)
	}
	bad, _ := events.New(ctx, billingevents.EventBalanceExhausted, "/x", "", map[string]any{"user_id": "nobody"})
	if _, err := fn.Handle(ctx, bad); function.EventStatus(err)/100 != 4 {
		t.Fatalf("fact without a user id: %v, want permanent", err)
	}
}
