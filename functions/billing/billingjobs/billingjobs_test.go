package billingjobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/billing/billingjobs"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestAChargeTickChargesTheUsageOfADeviceStillRunning(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingjobs.New(env.Service, nil, logging.Discard())
	ctx := context.Background()
	u := events.NewID()
	env.Credit(t, u, 100_000)
	start := env.Clock.Now()
	running := billingtest.Fact(t, deviceevents.EventRunning, "dev-1", u, start)
	var fact deviceevents.Fact
	if err := running.DataAs(&fact); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.RecordDeviceFact(ctx, running, running.Type(), fact); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(20 * time.Minute)
	tick, err := events.New(ctx, billingevents.EventChargeRequested, "/cloudphone/test", "", events.Tick{ScheduledAt: env.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Handle(ctx, tick); err != nil {
		t.Fatal(err)
	}
	want := billing.UsageCost(20, env.Service.RateMilli(2, 2048))
	if got := 100_000 - env.Balance(t, u); got != want || want == 0 {
		t.Fatalf("charged %d for 20 running minutes, want %d", got, want)
	}
	// A tick without data (a plain POST) runs too.
	bare, err := events.New(ctx, billingevents.EventSweepRequested, "/cloudphone/test", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Handle(ctx, bare); err != nil {
		t.Fatalf("sweep tick without data: %v", err)
	}
}
