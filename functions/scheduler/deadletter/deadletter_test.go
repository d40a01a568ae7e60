package deadletter_test

import (
	"context"
	"testing"

	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/functions/scheduler/deadletter"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestAnEventTheBrokerGaveUpOnIsKeptOnceWithTheBrokersError(t *testing.T) {
	t.Parallel()
	pool := dbtest.Database(t, scheduler.MigrationSets()...)
	store := scheduler.NewDeadLetters(pool)
	fn := deadletter.New(store, logging.Discard())
	ctx := context.Background()
	e, err := events.New(ctx, "cloudphone.test.happened", "/cloudphone/test", "thing-1", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	e.SetExtension("knativeerrordest", "http://billing-metering.cloudphone.svc")
	e.SetExtension("knativeerrorcode", "500")
	e.SetExtension("knativeerrordata", "boom")
	for range 2 { // the broker may deliver a dead letter twice
		if _, err := fn.Handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	list, err := store.List(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d dead letters, want 1", len(list))
	}
	l := list[0]
	if l.EventID != e.ID() || l.Type != e.Type() || l.Destination != "http://billing-metering.cloudphone.svc" ||
		l.ErrorCode != "500" || l.ErrorData != "boom" {
		t.Fatalf("dead letter %+v", l)
	}
}
