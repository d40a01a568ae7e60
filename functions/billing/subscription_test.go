package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
)

func TestSubscriptionExtendsAndExpiresRevokingItsGrant(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 2*990)
	var orders []string
	for range 2 {
		o := e.order(t, u, "basic")
		if _, err := e.handleReply(t, reply(t, userevents.EventQuotaGranted, o.ID, u, "")); err != nil {
			t.Fatal(err)
		}
		orders = append(orders, o.ID)
	}
	subs, _ := e.Service.Subscriptions(context.Background(), u)
	if len(subs) != 1 || !subs[0].ExpiresAt.Equal(e.Clock.Now().Add(60*24*time.Hour)) || subs[0].GrantID != orders[1] {
		t.Fatalf("subscriptions %+v", subs)
	}
	if len(e.Outboxed(t, userevents.EventQuotaRevokeRequested, orders[0])) != 1 {
		t.Fatal("the replaced grant was not revoked")
	}
	// The user context confirms that revoke: the first order's saga is
	// completed, so the reply changes nothing and writes nothing.
	revoked := reply(t, userevents.EventQuotaRevoked, orders[0], u, "")
	if out, err := e.handleReply(t, revoked); err != nil || out != billing.OutcomeIgnored {
		t.Fatalf("revoked of the replaced grant: %s, %v", out, err)
	}
	var inboxed int
	if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE id = $1`, revoked.ID()).Scan(&inboxed); err != nil || inboxed != 0 {
		t.Fatalf("the ignored reply left %d inbox rows (%v), want none", inboxed, err)
	}
	e.Clock.Advance(61 * 24 * time.Hour)
	if n, err := e.Service.ExpireSubscriptions(context.Background()); err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	if len(e.Outboxed(t, userevents.EventQuotaRevokeRequested, orders[1])) != 1 {
		t.Fatal("the expired grant was not revoked")
	}
}
