package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"net/http"

	"github.com/cloudphone/cloudphone/functions/scheduler"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/events"
)

// An event its subscriber refuses for good (a grant command naming no grant)
// is not lost: the broker hands it to the dead-letter sink, which keeps it
// with the broker's error for an operator; an administrator sends it again
// and, refused again, it comes back to the store.
func TestARefusedEventEndsInTheDeadLetterStore(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.adminPassword = notifyAdminPassword
	p := start(t, env, &subscriber{})
	ctx := context.Background()
	e, err := events.New(ctx, userevents.EventQuotaGrantRequested, "/cloudphone/e2e/test", "no-grant", map[string]any{"schema_version": 1})
	if err != nil {
		t.Fatal(err)
	}
	if status := p.sendEvent(t, e); status != http.StatusAccepted {
		t.Fatalf("broker answered %d", status)
	}
	pool, err := p.Resources().Postgres(ctx, scheduler.Database, scheduler.MigrationSets()...)
	if err != nil {
		t.Fatal(err)
	}
	store := scheduler.NewDeadLetters(pool)
	var got []scheduler.DeadLetter
	eventually(t, 10*time.Second, "the refused event never reached the dead-letter store", func() bool {
		got, err = store.List(ctx, 10)
		return err == nil && len(got) == 1
	})
	if got[0].EventID != e.ID() || got[0].Type != userevents.EventQuotaGrantRequested || got[0].Destination != "user-quota-grants" || got[0].ErrorCode != "400" {
		t.Fatalf("dead letter %+v", got[0])
	}

	tok := login(t, p.URL(), "admin", notifyAdminPassword)
	var listed struct{ Items []scheduler.DeadLetter }
	if st := call(t, "GET", p.URL()+"/api/v1/admin/dead-letters", nil, &listed, deviceBearer(tok)...); st != 200 || len(listed.Items) != 1 || listed.Items[0].ID != got[0].ID {
		t.Fatalf("admin list: %d %+v", st, listed)
	}
	bob := register(t, p.URL(), "bob")
	bobTok := login(t, p.URL(), "bob", "correct horse battery")
	if st := call(t, "GET", p.URL()+"/api/v1/admin/dead-letters", nil, nil, deviceBearer(bobTok)...); st != http.StatusForbidden {
		t.Fatalf("%s lists dead letters: %d, want 403", bob.Username, st)
	}
	if st := call(t, "POST", p.URL()+"/api/v1/admin/dead-letters/999999/redrive", nil, nil, deviceBearer(tok)...); st != http.StatusNotFound {
		t.Fatalf("re-drive of an unknown letter: %d, want 404", st)
	}
	var sent scheduler.DeadLetter
	if st := call(t, "POST", p.URL()+"/api/v1/admin/dead-letters/"+strconv.FormatInt(got[0].ID, 10)+"/redrive", nil, &sent, deviceBearer(tok)...); st != http.StatusAccepted || sent.Redrives != 1 || sent.RedrivenAt == nil {
		t.Fatalf("re-drive: %d %+v", st, sent)
	}
	// The same event reaches its subscriber again, is refused again and is
	// received again: one row, re-driven once, no longer marked sent.
	eventually(t, 10*time.Second, "the re-driven event never came back", func() bool {
		got, err = store.List(ctx, 10)
		return err == nil && len(got) == 1 && got[0].RedrivenAt == nil && got[0].Redrives == 1
	})
	if got[0].EventID != e.ID() || got[0].ErrorCode != "400" {
		t.Fatalf("dead letter after the re-drive %+v", got[0])
	}
}
