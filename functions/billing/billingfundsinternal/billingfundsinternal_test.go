package billingfundsinternal_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingfundsinternal"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function/functiontest"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

func TestTheDeviceContextLearnsWhetherAUserCanPayAnHourAndNoOtherCallerDoes(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fn := billingfundsinternal.New(env.Service, servicetoken.NewVerifier(pub, servicetoken.VerifierOptions{}), logging.Discard())
	token := func(caller string) string {
		t.Helper()
		m := servicetoken.NewMinter(caller, priv, servicetoken.MinterOptions{
			Redis: env.Redis, Log: logging.Discard(), KeyPrefix: "test:svctoken:" + events.NewID() + ":",
		})
		tok, err := m.Token(context.Background(), servicetoken.ContextBilling)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	u := events.NewID()
	env.Credit(t, u, 700)
	path := "/internal/v1/funds/" + u + "/check"
	size := billingfundsinternal.CheckRequest{CPUCores: 2, MemoryMB: 2048}

	var fc billing.FundsCheck
	billingtest.Decode(t, functiontest.Call(fn.Handle, "POST", path, token(servicetoken.ContextDevice), size), http.StatusOK, &fc)
	if fc.Available != 700 || fc.Hourly <= 0 || fc.Currency != "USD" {
		t.Fatalf("funds check %+v, want 700 available and the hourly price", fc)
	}
	poor := events.NewID()
	env.Credit(t, poor, 10)
	if w := functiontest.Call(fn.Handle, "POST", "/internal/v1/funds/"+poor+"/check", token(servicetoken.ContextDevice), size); w.Code != http.StatusConflict {
		t.Fatalf("a balance short of an hour: %d %s, want 409", w.Code, w.Body)
	}
	if w := functiontest.Call(fn.Handle, "POST", path, token(servicetoken.ContextUser), size); w.Code != http.StatusForbidden {
		t.Fatalf("the user context asked: %d %s, want 403", w.Code, w.Body)
	}
	if w := functiontest.Call(fn.Handle, "POST", path, "", size); w.Code != http.StatusUnauthorized {
		t.Fatalf("no service token: %d %s, want 401", w.Code, w.Body)
	}
}
