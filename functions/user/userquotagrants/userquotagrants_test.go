package userquotagrants_test

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/userquotagrants"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
)

var ctx = context.Background()

type bundle struct {
	env usertest.Env
	fn  *userquotagrants.Function
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	return bundle{env: env, fn: userquotagrants.New(env.Service, logging.Discard())}
}

// handle delivers e and returns the reply's type and data, failing on an error.
func (b bundle) handle(t *testing.T, e event.Event, data any) string {
	t.Helper()
	reply, err := b.fn.Handle(ctx, e)
	if err != nil || reply == nil {
		t.Fatalf("Handle(%s) = %v, %v", e.Type(), reply, err)
	}
	if err := reply.DataAs(data); err != nil {
		t.Fatal(err)
	}
	if reply.Subject() == "" || reply.Source() != user.SourceQuotaGrants {
		t.Fatalf("reply subject %q source %q", reply.Subject(), reply.Source())
	}
	return reply.Type()
}

func (b bundle) limits(t *testing.T, userID string) userevents.Limits {
	t.Helper()
	q, err := b.env.Service.Quota(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	return q.Limits
}

var pro = userevents.Limits{MaxDevices: 5, MaxRunningDevices: 3, MaxCPUCores: 16, MaxMemoryMB: 16384, MaxStorageGB: 128,
	DeviceMaxCPUCores: 4, DeviceMaxMemoryMB: 8192}

func TestGrantRaisesLimitsOnceAcrossRedeliveriesAndRepeatedCommands(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "alma")
	e := usertest.GrantEvent(t, "order-1", u.ID, pro)
	want := user.FreeTier.Plus(pro)
	for i, ev := range []event.Event{e, e, usertest.GrantEvent(t, "order-1", u.ID, pro)} {
		var got userevents.QuotaGranted
		if typ := b.handle(t, ev, &got); typ != userevents.EventQuotaGranted {
			t.Fatalf("delivery %d: reply %s", i, typ)
		}
		if got.GrantID != "order-1" || got.UserID != u.ID || got.PlanID != "pro" || got.Granted != pro || got.Limits != want || got.GrantedAt.IsZero() {
			t.Fatalf("delivery %d: reply %+v", i, got)
		}
	}
	if got := b.limits(t, u.ID); got != want {
		t.Fatalf("limits = %+v, want %+v", got, want)
	}
	// Counts and totals add up; per-device caps are the larger one.
	if want.MaxDevices != 6 || want.MaxCPUCores != 18 || want.DeviceMaxCPUCores != 4 || want.DeviceMaxMemoryMB != 8192 {
		t.Fatalf("effective-limits rule: %+v", want)
	}
	b.handle(t, usertest.GrantEvent(t, "order-2", u.ID, userevents.Limits{MaxDevices: 1, DeviceMaxCPUCores: 1}), &userevents.QuotaGranted{})
	if got := b.limits(t, u.ID); got.MaxDevices != 7 || got.DeviceMaxCPUCores != 4 {
		t.Fatalf("after a second grant: %+v", got)
	}
}

func TestRevokeLowersLimitsAndIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "bela")
	b.handle(t, usertest.GrantEvent(t, "order-1", u.ID, pro), &userevents.QuotaGranted{})
	rev := usertest.RevokeEvent(t, "order-1", u.ID)
	for i, ev := range []event.Event{rev, rev, usertest.RevokeEvent(t, "order-1", u.ID)} {
		var got userevents.QuotaRevoked
		if typ := b.handle(t, ev, &got); typ != userevents.EventQuotaRevoked {
			t.Fatalf("revoke %d: reply %s", i, typ)
		}
		if got.GrantID != "order-1" || got.UserID != u.ID || got.Limits != user.FreeTier || got.RevokedAt.IsZero() {
			t.Fatalf("revoke %d: reply %+v", i, got)
		}
	}
	if got := b.limits(t, u.ID); got != user.FreeTier {
		t.Fatalf("limits after revoke = %+v", got)
	}
	// The grant, delivered again after its revoke, does not come back.
	var refused userevents.QuotaGrantRefused
	if typ := b.handle(t, usertest.GrantEvent(t, "order-1", u.ID, pro), &refused); typ != userevents.EventQuotaGrantRefused || refused.Reason != userevents.RefusedRevoked {
		t.Fatalf("grant after revoke: %s %+v", typ, refused)
	}
	if got := b.limits(t, u.ID); got != user.FreeTier {
		t.Fatalf("limits = %+v", got)
	}
}

func TestRevokeBeforeGrantLeavesATombstoneTheGrantCannotPass(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "cleo")
	var revoked userevents.QuotaRevoked
	if typ := b.handle(t, usertest.RevokeEvent(t, "order-9", u.ID), &revoked); typ != userevents.EventQuotaRevoked || revoked.UserID != u.ID {
		t.Fatalf("revoke of an unknown grant: %s %+v", typ, revoked)
	}
	var refused userevents.QuotaGrantRefused
	if typ := b.handle(t, usertest.GrantEvent(t, "order-9", u.ID, pro), &refused); typ != userevents.EventQuotaGrantRefused ||
		refused.Reason != userevents.RefusedRevoked || refused.GrantID != "order-9" {
		t.Fatalf("late grant: %s %+v", typ, refused)
	}
	if got := b.limits(t, u.ID); got != user.FreeTier {
		t.Fatalf("limits = %+v, want the free tier", got)
	}
}

func TestGrantForAnUnknownUserIsRefusedNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ghost := "00000000-0000-4000-8000-000000000001"
	e := usertest.GrantEvent(t, "order-1", ghost, pro)
	for range 2 {
		var refused userevents.QuotaGrantRefused
		if typ := b.handle(t, e, &refused); typ != userevents.EventQuotaGrantRefused || refused.Reason != userevents.RefusedUnknownUser || refused.UserID != ghost {
			t.Fatalf("grant to nobody: %s %+v", typ, refused)
		}
	}
	var revoked userevents.QuotaRevoked
	if typ := b.handle(t, usertest.RevokeEvent(t, "order-1", ghost), &revoked); typ != userevents.EventQuotaRevoked || revoked.Limits != (userevents.Limits{}) {
		t.Fatalf("revoke for nobody: %s %+v", typ, revoked)
	}
}

func TestInvalidAmountsAreRefusedAndUnanswerableCommandsArePermanent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "dora")
	var refused userevents.QuotaGrantRefused
	if typ := b.handle(t, usertest.GrantEvent(t, "order-1", u.ID, userevents.Limits{MaxDevices: -1}), &refused); typ != userevents.EventQuotaGrantRefused || refused.Reason != userevents.RefusedInvalid {
		t.Fatalf("negative amount: %s %+v", typ, refused)
	}
	for name, e := range map[string]event.Event{
		"no grant id":  usertest.GrantEvent(t, "", u.ID, pro),
		"bad user id":  usertest.RevokeEvent(t, "order-1", "nobody"),
		"foreign type": func() event.Event { e := usertest.RevokeEvent(t, "o", u.ID); e.SetType("cloudphone.x.y.z"); return e }(),
	} {
		_, err := b.fn.Handle(ctx, e)
		if status := function.EventStatus(err); status < 400 || status >= 500 || status == 409 {
			t.Errorf("%s: %v (status %d), want a permanent refusal", name, err, status)
		}
	}
}

func TestGrantsForOneUserRaceWithoutLosingOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.env.Register(t, "edda")
	done := make(chan error, 20)
	for i := range 20 {
		go func() {
			// Ten grant ids, each sent twice under different event ids.
			_, err := b.fn.Handle(ctx, usertest.GrantEvent(t, "order-"+string(rune('a'+i%10)), u.ID, userevents.Limits{MaxDevices: 1}))
			done <- err
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := b.limits(t, u.ID); got.MaxDevices != 1+10 {
		t.Fatalf("max_devices = %d, want 11", got.MaxDevices)
	}
}
