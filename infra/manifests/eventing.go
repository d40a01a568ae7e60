package manifests

import (
	"encoding/json"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingv1alpha1 "knative.dev/eventing/pkg/apis/eventing/v1alpha1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/function"
)

// The Eventing objects are Knative Eventing's own v1 (and v1alpha1
// EventPolicy) types, so what is rendered is what its webhook reads.
type (
	// Broker is eventing.knative.dev/v1 Broker.
	Broker = eventingv1.Broker
	// Trigger is eventing.knative.dev/v1 Trigger.
	Trigger = eventingv1.Trigger
	// Filter is one element of a Trigger's spec.filters.
	Filter = eventingv1.SubscriptionsAPIFilter
	// PingSource is sources.knative.dev/v1 PingSource.
	PingSource = sourcesv1.PingSource
	// EventPolicy is eventing.knative.dev/v1alpha1 EventPolicy.
	EventPolicy = eventingv1alpha1.EventPolicy
)

func serviceRef(name string) duckv1.Destination {
	return duckv1.Destination{Ref: &duckv1.KReference{
		APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: name,
	}}
}

func ptr[T any](v T) *T { return &v }

// broker renders the Broker with the platform's default delivery: five
// exponential retries from one second, then the dead-letter sink.
func broker(o Options) *Broker {
	dls := serviceRef(o.DeadLetter)
	return &Broker{
		TypeMeta: metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Broker"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        o.Broker,
			Namespace:   o.Namespace,
			Labels:      map[string]string{"app.kubernetes.io/part-of": "cloudphone"},
			Annotations: map[string]string{"eventing.knative.dev/broker.class": o.BrokerClass},
		},
		Spec: eventingv1.BrokerSpec{Delivery: &eventingduckv1.DeliverySpec{
			DeadLetterSink: &dls,
			Retry:          ptr(int32(5)),
			Timeout:        ptr("PT30S"),
			BackoffPolicy:  ptr(eventingduckv1.BackoffPolicyExponential),
			BackoffDelay:   ptr(isoDuration(catalog.DefaultBackoffDelay)),
		}},
	}
}

// TriggerName is the name (and file name without .yaml) of the Trigger that
// feeds events of type typ to subscriber. Kubernetes names allow neither
// dots nor underscores (cloudphone.app.install_failed), so both become
// dashes.
func TriggerName(typ, subscriber string) string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(typ) + "--" + subscriber
}

// triggers renders one Trigger per (consumed type, subscriber), plus one per
// scheduled function for its PingSource's events, sorted by name.
func triggers(specs []function.Spec, o Options) []*Trigger {
	var out []*Trigger
	for _, s := range specs {
		for _, t := range s.Consumes {
			out = append(out, trigger(s, TriggerName(t, s.Name), []Filter{{Exact: map[string]string{"type": t}}}, o))
		}
		if s.Schedule != "" {
			// Exact takes one attribute per element; elements are ANDed.
			out = append(out, trigger(s, TriggerName(PingType, s.Name), []Filter{
				{Exact: map[string]string{"type": PingType}},
				{Exact: map[string]string{PingTypeExtension: s.Consumes[0]}},
			}, o))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func trigger(s function.Spec, name string, filters []Filter, o Options) *Trigger {
	retry, delay := catalog.DefaultRetry, catalog.DefaultBackoffDelay
	if d := o.Deployment(s.Name).Delivery; d != nil {
		retry, delay = d.Retry, d.BackoffDelay
	}
	dls := serviceRef(o.DeadLetter)
	meta := labels(s)
	meta["eventing.knative.dev/broker"] = o.Broker
	return &Trigger{
		TypeMeta:   metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Trigger"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: meta},
		Spec: eventingv1.TriggerSpec{
			Broker:     o.Broker,
			Filters:    filters,
			Subscriber: serviceRef(s.Name),
			Delivery: &eventingduckv1.DeliverySpec{
				DeadLetterSink: &dls,
				Retry:          ptr(int32(retry)),
				Timeout:        ptr(isoDuration(timeoutDuration(s))),
				BackoffPolicy:  ptr(eventingduckv1.BackoffPolicyExponential),
				BackoffDelay:   ptr(isoDuration(delay)),
			},
		},
	}
}

// PingSourceName is the name of the PingSource that drives function name.
func PingSourceName(name string) string { return "pingsource-" + name }

// pingSource renders the PingSource of a scheduled function. It sends into
// the Broker, so the ping is durable and retried like any event, and marks
// the event with PingTypeExtension = the function's first consumed type.
func pingSource(s function.Spec, o Options) *PingSource {
	data, _ := json.Marshal(map[string]string{"function": s.Name, "schedule": s.Schedule})
	return &PingSource{
		TypeMeta:   metav1.TypeMeta{APIVersion: "sources.knative.dev/v1", Kind: "PingSource"},
		ObjectMeta: metav1.ObjectMeta{Name: PingSourceName(s.Name), Namespace: o.Namespace, Labels: labels(s)},
		Spec: sourcesv1.PingSourceSpec{
			SourceSpec: duckv1.SourceSpec{
				Sink: duckv1.Destination{Ref: &duckv1.KReference{
					APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: o.Broker,
				}},
				CloudEventOverrides: &duckv1.CloudEventOverrides{Extensions: map[string]string{
					PingTypeExtension: s.Consumes[0],
				}},
			},
			Schedule:    s.Schedule,
			Timezone:    "Etc/UTC",
			ContentType: "application/json",
			Data:        string(data),
		},
	}
}

// EventPolicyName is the name of the EventPolicy that lets sender send to the
// Broker.
func EventPolicyName(sender string) string { return "eventpolicy-" + sender }

// ServiceAccountName is the Kubernetes service account the functions of
// context run as: their identity as event senders on Knative.
func ServiceAccountName(context string) string { return "cloudphone-" + context }

// eventPolicies renders, for each sender of function.EventPolicy, the
// EventPolicy that lets it send exactly its event types to the Broker: a
// context by its functions' service account, the schedules by their
// PingSources. With Eventing's OIDC authentication on, the Broker admits
// nothing else; the embedded and the deployable broker enforce the same.
func eventPolicies(specs []function.Spec, o Options) []*EventPolicy {
	policy := function.EventPolicy(specs)
	var out []*EventPolicy
	for _, sender := range policy.Senders() {
		var from []eventingv1alpha1.EventPolicySpecFrom
		if sender == eventauth.PingSource {
			for _, s := range specs {
				if s.Schedule != "" {
					from = append(from, eventingv1alpha1.EventPolicySpecFrom{Ref: &eventingv1alpha1.EventPolicyFromReference{
						APIVersion: "sources.knative.dev/v1", Kind: "PingSource", Name: PingSourceName(s.Name), Namespace: o.Namespace,
					}})
				}
			}
		} else {
			from = []eventingv1alpha1.EventPolicySpecFrom{{Sub: ptr("system:serviceaccount:" + o.Namespace + ":" + ServiceAccountName(sender))}}
		}
		var anyType []Filter
		for _, t := range policy.Types(sender) {
			anyType = append(anyType, Filter{Exact: map[string]string{"type": t}})
		}
		out = append(out, &EventPolicy{
			TypeMeta: metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1alpha1", Kind: "EventPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: EventPolicyName(sender), Namespace: o.Namespace, Labels: map[string]string{
				"app.kubernetes.io/part-of": "cloudphone", "cloudphone.dev/sender": sender,
			}},
			Spec: eventingv1alpha1.EventPolicySpec{
				To: []eventingv1alpha1.EventPolicySpecTo{{Ref: &eventingv1alpha1.EventPolicyToReference{
					APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: o.Broker,
				}}},
				From:    from,
				Filters: []Filter{{Any: anyType}},
			},
		})
	}
	return out
}
