package billingmetering_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingmetering"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestARunningAndAStoppedFactChargeTheMinutesBetweenThemOnce(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingmetering.New(env.Service, logging.Discard())
	ctx := context.Background()
	u := events.NewID()
	env.Credit(t, u, 100_000)
	start := env.Clock.Now()
	if _, err := fn.Handle(ctx, billingtest.Fact(t, deviceevents.EventRunning, "dev-1", u, start)); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(30 * time.Minute)
	stop := billingtest.Fact(t, deviceevents.EventStopped, "dev-1", u, start.Add(30*time.Minute))
	for range 2 { // a redelivery changes nothing
		if _, err := fn.Handle(ctx, stop); err != nil {
			t.Fatal(err)
		}
	}
	want := billing.UsageCost(30, env.Service.RateMilli(2, 2048))
	if got := 100_000 - env.Balance(t, u); got != want || want == 0 {
		t.Fatalf("charged %d for 30 minutes, want %d", got, want)
	}
}

func TestAFactThatCannotBeReadIsRefusedForGood(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingmetering.New(env.Service, logging.Discard())
	e, err := events.New(context.Background(), deviceevents.EventRunning, "/cloudphone/device/test", "dev-1", map[string]any{"at": "not a time"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Handle(context.Background(), e); apierr.CodeOf(err) != apierr.Unprocessable {
		t.Fatalf("unreadable fact: %v, want a permanent refusal", err)
	}
}
