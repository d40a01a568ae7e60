package broker

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestTriggerFiltersMatchWithEventingsFilters(t *testing.T) {
	t.Parallel()
	e := event.New()
	e.SetID("1")
	e.SetType("cloudphone.billing.order.paid")
	e.SetSource("/cloudphone/billing/order-pay")
	e.SetExtension("correlationid", "saga-7")

	tests := []struct {
		name string
		spec string // the spec's filter part, YAML at two-space indent
		want bool
	}{
		{"no filter matches everything", ``, true},
		{"legacy exact", "filter:\n    attributes:\n      type: cloudphone.billing.order.paid", true},
		{"legacy mismatch", "filter:\n    attributes:\n      type: cloudphone.billing.order.failed", false},
		{"legacy empty value matches any value", "filter:\n    attributes:\n      type: \"\"\n      source: \"\"", true},
		// As Knative's broker decides it: an empty value still needs the attribute set.
		{"legacy empty value needs the attribute", "filter:\n    attributes:\n      subject: \"\"", false},
		{"legacy ANDs attributes", "filter:\n    attributes:\n      type: cloudphone.billing.order.paid\n      source: /elsewhere", false},
		{"legacy extension", "filter:\n    attributes:\n      correlationid: saga-7", true},
		{"exact", "filters:\n    - exact:\n        type: cloudphone.billing.order.paid", true},
		{"exact on a missing attribute", "filters:\n    - exact:\n        subject: x", false},
		{"prefix", "filters:\n    - prefix:\n        type: cloudphone.billing.", true},
		{"prefix mismatch", "filters:\n    - prefix:\n        type: cloudphone.user.", false},
		{"suffix", "filters:\n    - suffix:\n        type: .paid", true},
		{"suffix mismatch", "filters:\n    - suffix:\n        type: .failed", false},
		{"list is ANDed", "filters:\n    - prefix:\n        type: cloudphone.\n    - suffix:\n        type: .failed", false},
		{"all", "filters:\n    - all:\n        - prefix:\n            type: cloudphone.billing.\n        - exact:\n            source: /cloudphone/billing/order-pay", true},
		{"all with one miss", "filters:\n    - all:\n        - prefix:\n            type: cloudphone.billing.\n        - exact:\n            source: /x", false},
		{"any", "filters:\n    - any:\n        - exact:\n            type: a\n        - suffix:\n            type: .paid", true},
		{"any with no hit", "filters:\n    - any:\n        - exact:\n            type: a\n        - exact:\n            type: b", false},
		{"not", "filters:\n    - not:\n        exact:\n          type: cloudphone.billing.order.failed", true},
		{"not of a match", "filters:\n    - not:\n        prefix:\n          type: cloudphone.", false},
		{"cesql", "filters:\n    - cesql: \"type = 'cloudphone.billing.order.paid' AND correlationid LIKE 'saga-%'\"", true},
		{"cesql mismatch", "filters:\n    - cesql: \"source = '/x'\"", false},
		{"filters win over legacy filter", "filter:\n    attributes:\n      type: nope\n  filters:\n    - exact:\n        type: cloudphone.billing.order.paid", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec:\n  broker: cloudphone\n  " +
				tc.spec + "\n  subscriber:\n    ref:\n      name: fn\n"
			trig, ok, err := parseDocument([]byte(doc))
			if err != nil || !ok {
				t.Fatalf("parse:\n%s\nok=%v err=%v", doc, ok, err)
			}
			if got := trig.Matches(e); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}
