package broker

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
)

// direct is the option under test: deliveries are attempted within Send.
var direct = Options{DirectWait: 2 * time.Second, PollInterval: 10 * time.Millisecond}

// stored counts every row of the deliveries table, whatever its state.
func (f fixture) stored(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM broker_deliveries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDirectDeliveryReachesEverySubscriberWithinSendAndStoresNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.broker(t, []Trigger{
		trigger("paid-to-a", typePaid, "fn-a", Delivery{}),
		trigger("paid-to-b", typePaid, "fn-b", Delivery{}),
	}, direct)
	// No Run: what Send did not deliver or store would never arrive.
	send(t, b, newEvent(t, typePaid))
	if a, bb := len(f.subs.to("fn-a")), len(f.subs.to("fn-b")); a != 1 || bb != 1 {
		t.Fatalf("when Send returned, fn-a had %d and fn-b %d deliveries; want 1 each", a, bb)
	}
	if n := f.stored(t); n != 0 {
		t.Errorf("%d rows stored for deliveries that succeeded at once", n)
	}
}

func TestDirectDeliveryDeliversTheReplyWithinSend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.broker(t, []Trigger{
		trigger("paid-to-billing", typePaid, "billing-step", Delivery{}),
		trigger("reserved-to-user", typeReserved, "user-step", Delivery{}),
	}, direct)
	f.subs.setAnswer(func(_ context.Context, subscriber string, e event.Event, _ int) (int, *event.Event, error) {
		if subscriber != "billing-step" {
			return http.StatusOK, nil, nil
		}
		reply, err := events.New(events.WithCause(context.Background(), e), typeReserved, "/cloudphone/billing/step", "", nil)
		if err != nil {
			t.Error(err)
		}
		return http.StatusOK, &reply, nil
	})
	send(t, b, newEvent(t, typePaid))
	if n := len(f.subs.to("user-step")); n != 1 {
		t.Fatalf("the reply reached user-step %d times by the time Send returned, want 1", n)
	}
	if n := f.stored(t); n != 0 {
		t.Errorf("%d rows stored, want none", n)
	}
}

func TestDirectDeliveryThatFailsIsStoredAndRetriedByRun(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{Retry: 3, BackoffDelay: 10 * time.Millisecond})}, direct)
	f.subs.setAnswer(func(_ context.Context, _ string, _ event.Event, n int) (int, *event.Event, error) {
		if n == 0 {
			return http.StatusServiceUnavailable, nil, nil
		}
		return http.StatusOK, nil, nil
	})
	send(t, b, newEvent(t, typePaid))
	var attempts, status int
	if err := f.pool.QueryRow(context.Background(),
		`SELECT attempts, last_status FROM broker_deliveries WHERE status = 'pending' AND claim IS NULL`).Scan(&attempts, &status); err != nil {
		t.Fatalf("the failed delivery is not stored for a retry: %v", err)
	}
	if attempts != 1 || status != http.StatusServiceUnavailable {
		t.Errorf("stored with attempts %d and last status %d, want 1 and 503", attempts, status)
	}
	run(t, b)
	eventually(t, "the retry succeeds and the row is removed", func() bool { return f.stored(t) == 0 })
	if n := len(f.subs.to("fn")); n != 2 {
		t.Errorf("fn had %d deliveries, want 2 (the direct one and the retry)", n)
	}
}

func TestDirectDeliveryStillRunningAfterTheWaitIsStoredAndRecordedWhenItEnds(t *testing.T) {
	t.Parallel()
	f := setup(t)
	opts := direct
	opts.DirectWait = 50 * time.Millisecond
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{})}, opts)
	release := make(chan struct{})
	f.subs.setAnswer(func(ctx context.Context, _ string, _ event.Event, _ int) (int, *event.Event, error) {
		select {
		case <-release:
			return http.StatusOK, nil, nil
		case <-ctx.Done():
			return http.StatusGatewayTimeout, nil, ctx.Err()
		}
	})
	run(t, b)
	send(t, b, newEvent(t, typePaid))
	var claimedBy string
	if err := f.pool.QueryRow(context.Background(), `SELECT claim_owner FROM broker_deliveries WHERE claim IS NOT NULL`).Scan(&claimedBy); err != nil {
		t.Fatalf("the delivery still running is not stored as claimed: %v", err)
	}
	if claimedBy != b.owner {
		t.Errorf("claimed by %q, want this broker, %q", claimedBy, b.owner)
	}
	time.Sleep(100 * time.Millisecond) // the dispatcher runs meanwhile: the claim keeps the row from it
	close(release)
	eventually(t, "the late success removes the row", func() bool { return f.stored(t) == 0 })
	if n := len(f.subs.to("fn")); n != 1 {
		t.Errorf("fn had %d deliveries, want 1", n)
	}
}

func TestDirectDeliveryThatCanNeitherSucceedNorBeStoredFailsTheSend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	pool := reopen(t, f.pool)
	b, err := New(pool, []Trigger{trigger("paid", typePaid, "fn", Delivery{})}, f.subs, direct)
	if err != nil {
		t.Fatal(err)
	}
	f.subs.setAnswer(func(context.Context, string, event.Event, int) (int, *event.Event, error) {
		return http.StatusInternalServerError, nil, nil
	})
	pool.Close() // the database is gone when the failure has to be stored
	if err := b.Send(context.Background(), newEvent(t, typePaid)); !apierr.Is(err, apierr.Unavailable) {
		t.Fatalf("Send = %v, want unavailable so that the sender sends it again", err)
	}
}
