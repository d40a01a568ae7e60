package e2e

import (
	"context"
	"testing"
	"time"

	"net/http"

	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
)

// An event its subscriber refuses for good (a grant command naming no grant)
// is not lost: the broker hands it to the dead-letter sink, which keeps it
// with the broker's error for an operator.
func TestARefusedEventEndsInTheDeadLetterStore(t *testing.T) {
	t.Parallel()
	p := start(t, newEnv(t), &subscriber{})
	ctx := context.Background()
	e, err := events.New(ctx, user.EventQuotaGrantRequested, "/cloudphone/e2e/test", "no-grant", map[string]any{"schema_version": 1})
	if err != nil {
		t.Fatal(err)
	}
	if status := p.sendEvent(t, e); status != http.StatusAccepted {
		t.Fatalf("broker answered %d", status)
	}
	pool, err := p.Resources().Postgres(ctx, scheduler.Database, inbox.Migrations, scheduler.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	store := scheduler.NewDeadLetters(pool)
	var got []scheduler.DeadLetter
	eventually(t, 10*time.Second, "the refused event never reached the dead-letter store", func() bool {
		got, err = store.List(ctx, 10)
		return err == nil && len(got) == 1
	})
	if got[0].EventID != e.ID() || got[0].Type != user.EventQuotaGrantRequested || got[0].Destination != "user-quota-grants" || got[0].ErrorCode != "400" {
		t.Fatalf("dead letter %+v", got[0])
	}
}
