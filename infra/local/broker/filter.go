package broker

import (
	"context"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.uber.org/zap"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/eventfilter"
	"knative.dev/eventing/pkg/eventfilter/attributes"
	"knative.dev/eventing/pkg/eventfilter/subscriptionsapi"
)

// Filter is one element of a Trigger's spec.filters, Knative Eventing's own
// type: exactly one dialect of exact, prefix, suffix, all, any, not and
// cesql.
type Filter = eventingv1.SubscriptionsAPIFilter

// compile materializes t's filter with Eventing's filter implementation, as
// the Knative broker's filter does: spec.filters when present (ANDed),
// otherwise the legacy exact-match spec.filter.attributes (an empty value
// matches any), otherwise nothing is filtered.
func (t Trigger) compile() eventfilter.Filter {
	switch {
	case len(t.Filters) > 0:
		return subscriptionsapi.CreateSubscriptionsAPIFilters(zap.NewNop(), t.Filters)
	case len(t.Attributes) > 0:
		return attributes.NewAttributesFilter(t.Attributes)
	}
	return subscriptionsapi.NewNoFilter()
}

// Matches reports whether e passes the trigger's filter, as Knative decides
// it: every result but FailFilter delivers.
func (t Trigger) Matches(e event.Event) bool {
	f := t.filter
	if f == nil {
		f = t.compile()
	}
	return f.Filter(context.Background(), e) != eventfilter.FailFilter
}

// validateFilters checks t's filters with the Eventing webhook's own rules.
func (t Trigger) validateFilters() error {
	ctx := context.Background()
	if err := eventingv1.ValidateAttributeFilters(&eventingv1.TriggerFilter{Attributes: t.Attributes}); err != nil {
		return fmt.Errorf("trigger %s: spec.filter: %v", t.Name, err)
	}
	if err := eventingv1.ValidateSubscriptionAPIFiltersList(ctx, t.Filters); err != nil {
		return fmt.Errorf("trigger %s: spec.filters: %v", t.Name, err)
	}
	return nil
}
