package billingpaymentwebhook_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingpaymentwebhook"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

func TestASignedTopUpCreditsOnceAndAnUnsignedOneNothing(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingpaymentwebhook.New(env.Service, logging.Discard())
	u := events.NewID()
	body := []byte(fmt.Sprintf(`{"id":"evt_%s","type":"topup.succeeded","data":{"user_id":%q,"amount":2500,"currency":"USD"}}`, u[:8], u))
	post := func(sig string) (int, billing.WebhookResult) {
		r := httptest.NewRequest("POST", "/api/v1/payments/webhook", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if sig != "" {
			r.Header.Set(webhooksig.Header, sig)
		}
		w := httptest.NewRecorder()
		fn.Handle(w, r)
		var res billing.WebhookResult
		if w.Code == http.StatusOK {
			billingtest.Decode(t, w, http.StatusOK, &res)
		}
		return w.Code, res
	}
	now := env.Clock.Now()
	for name, sig := range map[string]string{
		"unsigned":     "",
		"wrong secret": webhooksig.Sign("not the secret", now, body),
		"stale":        webhooksig.Sign(billingtest.WebhookSecret, now.Add(-time.Hour), body),
	} {
		if st, _ := post(sig); st != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, st)
		}
	}
	if b := env.Balance(t, u); b != 0 {
		t.Fatalf("balance %d after refused webhooks", b)
	}
	for i, want := range []string{billing.WebhookCredited, billing.WebhookDuplicate} {
		if st, res := post(webhooksig.Sign(billingtest.WebhookSecret, now, body)); st != http.StatusOK || res.Status != want {
			t.Fatalf("delivery %d: %d %+v, want %s", i, st, res, want)
		}
	}
	if b := env.Balance(t, u); b != 2500 {
		t.Fatalf("balance %d, want 2500 credited once", b)
	}
}
