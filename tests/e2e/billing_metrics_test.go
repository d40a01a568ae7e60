package e2e

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cloudphone/cloudphone/functions/billing"
)

// metricValue returns the value (a histogram's count) of the series of name
// whose labels include want, summed over the matching series.
func metricValue(t testing.TB, families []*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	var v float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, x := range want {
				if labels[k] != x {
					continue series
				}
			}
			switch {
			case m.Gauge != nil:
				v += m.GetGauge().GetValue()
			case m.Counter != nil:
				v += m.GetCounter().GetValue()
			case m.Histogram != nil:
				v += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return v
}

// The billing metrics follow the orders: a completed and a failed purchase
// move the orders gauge (read from the database), the saga's outcomes and
// step times, and the ledger's totals by kind.
func TestBillingMetricsFollowCompletedAndFailedOrders(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	gather := func() []*dto.MetricFamily {
		fs, err := p.Resources().Metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	before := gather()
	_, rich := p.buyer(t, "metered-rich", 5000)
	_, poor := p.buyer(t, "metered-poor", 0)
	ok, st := p.order(t, rich, "basic", "m1")
	if st != http.StatusAccepted {
		t.Fatalf("order: %d", st)
	}
	bad, st := p.order(t, poor, "basic", "m2")
	if st != http.StatusAccepted {
		t.Fatalf("order: %d", st)
	}
	if o := p.settled(t, rich, ok.ID, 20*time.Second); o.Status != billing.OrderActive {
		t.Fatalf("order %+v", o)
	}
	if o := p.settled(t, poor, bad.ID, 20*time.Second); o.Status != billing.OrderFailed {
		t.Fatalf("order %+v", o)
	}
	after := gather()
	delta := func(name string, labels map[string]string) float64 {
		return metricValue(t, after, name, labels) - metricValue(t, before, name, labels)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"cloudphone_orders", map[string]string{"state": "active"}, 1},
		{"cloudphone_orders", map[string]string{"state": "failed", "failure_code": billing.FailInsufficientFunds}, 1},
		{"cloudphone_saga_outcomes_total", map[string]string{"saga": "purchase", "outcome": "completed"}, 1},
		{"cloudphone_saga_outcomes_total", map[string]string{"saga": "purchase", "outcome": "failed:" + billing.FailInsufficientFunds}, 1},
		{"cloudphone_saga_step_seconds", map[string]string{"step": billing.StepDebit, "outcome": "done"}, 1},
		{"cloudphone_saga_step_seconds", map[string]string{"step": billing.StepDebit, "outcome": "failed"}, 1},
		{"cloudphone_saga_step_seconds", map[string]string{"step": billing.StepGrant, "outcome": "done"}, 1},
		{"cloudphone_ledger_entries", map[string]string{"kind": billing.KindCredit}, 1},
		{"cloudphone_ledger_entries", map[string]string{"kind": billing.KindDebit}, 1},
		{"cloudphone_ledger_amount_cents", map[string]string{"kind": billing.KindCredit}, 5000},
	} {
		if got := delta(c.name, c.labels); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := metricValue(t, after, "cloudphone_ledger_entries", map[string]string{"kind": billing.KindRefund}); got != 0 {
		t.Errorf("refunds %v, want 0 (reported before the first)", got)
	}
}
