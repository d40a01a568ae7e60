package function

import (
	"testing"

	"github.com/cloudphone/cloudphone/shared/eventauth"
)

func TestEventPolicyAllowsEachContextWhatItsFunctionsDeclare(t *testing.T) {
	t.Parallel()
	p := EventPolicy([]Spec{
		{Name: "billing-orders", Context: "billing", Kind: KindHTTP, Emits: []string{"cloudphone.billing.order.debit.requested"}},
		{Name: "user-quota-grants", Context: "user", Kind: KindEvent, Consumes: []string{"cloudphone.user.quota.grant.requested"},
			Replies: []string{"cloudphone.user.quota.granted"}},
		{Name: "billing-jobs", Context: "billing", Kind: KindEvent, Schedule: "* * * * *",
			Consumes: []string{"cloudphone.billing.saga.sweep.requested", "cloudphone.billing.usage.charge.requested"}},
	})
	for _, tc := range []struct {
		sender, typ string
		want        bool
	}{
		{"billing", "cloudphone.billing.order.debit.requested", true},
		{"user", "cloudphone.user.quota.granted", true},
		{"billing", "cloudphone.user.quota.granted", false},
		{"user", "cloudphone.user.quota.grant.requested", false}, // consuming is not sending
		{eventauth.PingSource, "cloudphone.billing.saga.sweep.requested", true},
		{eventauth.PingSource, "cloudphone.billing.usage.charge.requested", true},
		{eventauth.PingSource, PingType, true},
		{eventauth.PingSource, "cloudphone.billing.order.debit.requested", false},
		{eventauth.Broker, "cloudphone.billing.order.debit.requested", false},
	} {
		if got := p.Allows(tc.sender, tc.typ); got != tc.want {
			t.Errorf("%s sends %s: %v, want %v", tc.sender, tc.typ, got, tc.want)
		}
	}
	if got := p.SenderOf("user-quota-grants"); got != "user" {
		t.Errorf("user-quota-grants replies as %q, want user", got)
	}
}
