package billing_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
)

func TestADeviceRunningNMinutesIsChargedForNMinutes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 100000)
	start := e.Clock.Now()
	rate := e.Service.RateMilli(2, 2048) // 50 + 2×10 + 2×5 = 80 per hour
	if rate != 80_000 {
		t.Fatalf("rate %d", rate)
	}
	e.record(t, fact(t, deviceevents.EventRunning, "dev-1", u, start))
	// Charged while running, again later, then stopped out of order and
	// re-delivered: 25 minutes in total, charged once.
	e.Clock.Advance(10 * time.Minute)
	if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := 100000 - e.Balance(t, u); got != billing.UsageCost(10, rate) {
		t.Fatalf("after 10 minutes charged %d, want %d", got, billing.UsageCost(10, rate))
	}
	stop := fact(t, deviceevents.EventStopped, "dev-1", u, start.Add(25*time.Minute))
	e.record(t, stop)
	e.record(t, stop)
	e.Clock.Advance(30 * time.Minute)
	for range 2 {
		if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := 100000-e.Balance(t, u), billing.UsageCost(25, rate); got != want {
		t.Fatalf("25 minutes charged %d, want %d", got, want)
	}
	// A stop that arrives before its running fact (and an error ends billing).
	e.record(t, fact(t, deviceevents.EventError, "dev-2", u, start.Add(7*time.Minute)))
	e.record(t, fact(t, deviceevents.EventRunning, "dev-2", u, start.Add(2*time.Minute)))
	before := e.Balance(t, u)
	if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := before-e.Balance(t, u), billing.UsageCost(5, rate); got != want {
		t.Fatalf("5 minutes up to the error charged %d, want %d", got, want)
	}
	e.checkLedger(t, u)
}

// A balance that cannot pay is never taken below zero: the shortfall is a
// debt, balance.exhausted is sent on every run while a device keeps running
// unpaid (so restarted phones are stopped again) and not once it stops, and
// the debt is collected first when money comes in.
func TestUnpaidUsageIsADebtThatStopsRunningDevicesUntilPaid(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 10)
	e.record(t, fact(t, deviceevents.EventRunning, "dev-x", u, e.Clock.Now()))
	for range 2 {
		e.Clock.Advance(20 * time.Minute)
		if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if b := e.Balance(t, u); b != 0 {
		t.Fatalf("balance %d", b)
	}
	if n := len(e.Outboxed(t, billingevents.EventBalanceExhausted, u)); n != 2 {
		t.Fatalf("%d balance.exhausted events while the device ran unpaid, want one per run (2)", n)
	}
	if n := len(e.Outboxed(t, billingevents.EventBalanceLow, u)); n != 1 {
		t.Fatalf("%d balance.low events, want 1", n)
	}
	stop := e.Clock.Now()
	e.record(t, fact(t, deviceevents.EventStopped, "dev-x", u, stop))
	e.Clock.Advance(10 * time.Minute)
	if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.Outboxed(t, billingevents.EventBalanceExhausted, u)); n != 2 {
		t.Fatalf("%d balance.exhausted events once nothing runs, want still 2", n)
	}
	// 40 minutes at the device's rate, minus the 10 paid, is owed; a top-up
	// pays it first.
	owed := billing.UsageCost(40, e.Service.RateMilli(2, 2048)) - 10
	e.Credit(t, u, owed+500)
	if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := e.Balance(t, u); b != 500 {
		t.Fatalf("after the top-up the balance is %d, want 500 (the debt of %d collected)", b, owed)
	}
	e.checkLedger(t, u)
}

// A late stopped fact that shortens an interval charged while the balance was
// empty lowers the debt; it never credits money that was not paid.
func TestALateFactLowersTheDebtAndCreditsNothingUnpaid(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 1) // a balance row, then spent at once
	start := e.Clock.Now()
	e.record(t, fact(t, deviceevents.EventRunning, "dev-late", u, start))
	e.Clock.Advance(30 * time.Minute)
	if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.record(t, fact(t, deviceevents.EventStopped, "dev-late", u, start.Add(5*time.Minute)))
	if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := e.Balance(t, u); b != 0 {
		t.Fatalf("a correction of unpaid usage paid out %d", b)
	}
	var debt int64
	if err := e.Service.Pool().QueryRow(context.Background(), `SELECT unpaid_usage FROM balances WHERE user_id = $1`, u).Scan(&debt); err != nil {
		t.Fatal(err)
	}
	if want := billing.UsageCost(5, e.Service.RateMilli(2, 2048)) - 1; debt != want {
		t.Fatalf("debt %d, want the 5 minutes run less the 1 paid (%d)", debt, want)
	}
	e.checkLedger(t, u)
}

// A phone is paid for when it stops, not at the next charging run: stopping
// and starting again between runs is never free.
func TestAStoppedDeviceIsChargedWhenItsStopIsRecorded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 1000)
	start := e.Clock.Now()
	rate := e.Service.RateMilli(2, 2048)
	e.record(t, fact(t, deviceevents.EventRunning, "dev-s", u, start))
	e.Clock.Advance(7 * time.Minute)
	e.record(t, fact(t, deviceevents.EventStopped, "dev-s", u, start.Add(7*time.Minute)))
	if got, want := 1000-e.Balance(t, u), billing.UsageCost(7, rate); got != want {
		t.Fatalf("charged %d when the stop was recorded, want %d for 7 minutes", got, want)
	}
	if _, err := e.Service.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := 1000-e.Balance(t, u), billing.UsageCost(7, rate); got != want {
		t.Fatalf("a charging run after the stop charged again: %d, want %d", got, want)
	}
	e.checkLedger(t, u)
}

// A phone starts only when the balance, less unpaid usage, pays for an hour
// of it; the refusal is 409 insufficient_funds.
func TestCoverHourNeedsAnHourOfThePhonesUsage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	hourly := billing.UsageCost(60, e.Service.RateMilli(2, 2048)) // 80
	if _, err := e.Service.CoverHour(context.Background(), u, 2, 2048); !apierr.Is(err, apierr.InsufficientFunds) || apierr.As(err).Status != http.StatusConflict {
		t.Fatalf("no balance: %v, want 409 insufficient_funds", err)
	}
	e.Credit(t, u, hourly-1)
	if _, err := e.Service.CoverHour(context.Background(), u, 2, 2048); !apierr.Is(err, apierr.InsufficientFunds) {
		t.Fatalf("a minor unit short: %v", err)
	}
	e.Credit(t, u, 1)
	fc, err := e.Service.CoverHour(context.Background(), u, 2, 2048)
	if err != nil || fc.Available != hourly || fc.Hourly != hourly {
		t.Fatalf("exactly an hour: %+v, %v", fc, err)
	}
	if _, err := e.Service.CoverHour(context.Background(), "not-a-uuid", 2, 2048); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("bad user id: %v", err)
	}
}
