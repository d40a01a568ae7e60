package outbox_test

import (
	"context"
	"testing"

	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// The <context>-outbox-redrive functions are this function around their
// context's relay.
func TestRedriveFunctionPutsEveryParkedRowBackToPendingOnItsTick(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	parked, kept := newEvent(t, ctx, 1), newEvent(t, ctx, 2)
	f.add(t, parked, kept)
	if _, err := f.pool.Exec(ctx, `UPDATE outbox SET status = 'dead', attempts = 10, last_error = 'broker down' WHERE event_id = $1`, parked.ID()); err != nil {
		t.Fatal(err)
	}
	relay := outbox.NewRelay(f.pool, &recorder{}, outbox.Options{Context: "test", DisableListen: true})
	fn := outbox.NewRedriveFunction(relay, logging.Discard())
	tick, err := events.New(ctx, "cloudphone.test.outbox.redrive.requested", "/cloudphone/test", "", events.Tick{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second tick finds nothing parked
		if _, err := fn.Handle(ctx, tick); err != nil {
			t.Fatal(err)
		}
	}
	if s := f.state(t, parked.ID()); s.status != outbox.StatusPending || s.attempts != 0 || s.lastError != "broker down" {
		t.Fatalf("parked row after the tick: %+v, want pending with a fresh budget and its last error", s)
	}
	if s := f.state(t, kept.ID()); s.status != outbox.StatusPending || s.attempts != 0 {
		t.Fatalf("pending row changed: %+v", s)
	}
}
