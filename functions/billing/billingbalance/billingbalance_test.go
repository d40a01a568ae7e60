package billingbalance_test

import (
	"net/http"
	"testing"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingbalance"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function/functiontest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestAnAdminCreditsAUserWhoThenSeesTheBalanceAndTheEntry(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingbalance.New(env.Service, env.Service.Verifier(), logging.Discard())
	u := events.NewID()
	user := env.UserToken(t, u)

	var entry billing.Entry
	billingtest.Decode(t, functiontest.Call(fn.Handle, "POST", "/api/v1/admin/users/"+u+"/credit", env.AdminToken(t, events.NewID()),
		billing.CreditRequest{Amount: 1500, Reason: "welcome"}), http.StatusCreated, &entry)
	if entry.UserID != u || entry.Amount != 1500 || entry.BalanceAfter != 1500 {
		t.Fatalf("credit entry %+v", entry)
	}
	var b billing.Balance
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/balance", user, nil), http.StatusOK, &b)
	if b.UserID != u || b.Balance != 1500 || b.Currency != "USD" {
		t.Fatalf("balance %+v", b)
	}
	var page billing.EntriesPage
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/balance/transactions?limit=10", user, nil), http.StatusOK, &page)
	if len(page.Entries) != 1 || page.Entries[0].ID != entry.ID {
		t.Fatalf("transactions %+v, want the credit", page.Entries)
	}
	var other billing.Balance
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/balance", env.UserToken(t, events.NewID()), nil), http.StatusOK, &other)
	if other.Balance != 0 {
		t.Fatalf("another user sees a balance of %d, want their own 0", other.Balance)
	}
}

func TestOnlyAnAdminWithTheCreditPermissionCredits(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingbalance.New(env.Service, env.Service.Verifier(), logging.Discard())
	u := events.NewID()
	credit := billing.CreditRequest{Amount: 100, Reason: "gift"}
	path := "/api/v1/admin/users/" + u + "/credit"
	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"nobody":           {"", http.StatusUnauthorized},
		"the user":         {env.UserToken(t, u), http.StatusForbidden},
		"admin, no credit": {env.Token(t, events.NewID(), []string{"admin"}, billing.PermAdminPlans), http.StatusForbidden},
	} {
		if w := functiontest.Call(fn.Handle, "POST", path, tc.token, credit); w.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", name, w.Code, w.Body, tc.want)
		}
	}
	if b := env.Balance(t, u); b != 0 {
		t.Fatalf("balance %d after refused credits", b)
	}
	if w := functiontest.Call(fn.Handle, "GET", "/api/v1/balance", "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("balance without a token: %d", w.Code)
	}
}
