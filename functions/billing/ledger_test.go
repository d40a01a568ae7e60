package billing_test

import (
	"sync"
	"testing"

	"github.com/cloudphone/cloudphone/functions/billing"
)

func TestConcurrentDebitsNeverOverdrawTheBalance(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 10*990)
	ids := make([]string, 50)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i] = e.order(t, u, "basic").ID })
	}
	wg.Wait()
	paid, failed := 0, 0
	for _, id := range ids {
		switch o := e.get(t, u, id); o.Status {
		case billing.OrderPaid:
			paid++
		case billing.OrderFailed:
			failed++
		}
	}
	if paid != 10 || failed != 40 || e.Balance(t, u) != 0 {
		t.Fatalf("%d paid, %d failed, balance %d", paid, failed, e.Balance(t, u))
	}
	e.checkLedger(t, u)
}
