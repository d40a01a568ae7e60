package billing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

func TestWebhookCreditsOnceAndRefusesBadOrStaleSignatures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	body := []byte(fmt.Sprintf(`{"id":"evt_1","type":"topup.succeeded","data":{"user_id":%q,"amount":1500,"currency":"USD"}}`, u))
	now := e.Clock.Now()
	if err := e.Service.VerifySignature(webhooksig.Sign("whsec_test", now, body), body); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	for name, h := range map[string]string{
		"wrong secret": webhooksig.Sign("other", now, body),
		"stale":        webhooksig.Sign("whsec_test", now.Add(-6*time.Minute), body),
		"future":       webhooksig.Sign("whsec_test", now.Add(6*time.Minute), body),
		"malformed":    "v1=abc",
		"missing":      "",
	} {
		if err := e.Service.VerifySignature(h, body); apierr.CodeOf(err) != apierr.Unauthorized {
			t.Errorf("%s: %v", name, err)
		}
	}
	var ev billing.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{billing.WebhookCredited, billing.WebhookDuplicate} {
		res, err := e.Service.TopUp(context.Background(), ev)
		if err != nil || res.Status != want {
			t.Fatalf("delivery %d: %+v, %v", i, res, err)
		}
	}
	if b := e.Balance(t, u); b != 1500 {
		t.Fatalf("balance %d", b)
	}
	e.checkLedger(t, u)
}
