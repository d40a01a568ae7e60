package manifests

import (
	"encoding/json"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Broker mirrors eventing.knative.dev/v1 Broker (knative.dev/eventing is not
// available as a module here; field names follow its v1 types).
type Broker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              BrokerSpec `json:"spec"`
}

// BrokerSpec mirrors eventing v1 BrokerSpec.
type BrokerSpec struct {
	Config   *duckv1.KReference `json:"config,omitempty"`
	Delivery *DeliverySpec      `json:"delivery,omitempty"`
}

// DeliverySpec mirrors eventing duck v1 DeliverySpec.
type DeliverySpec struct {
	DeadLetterSink *duckv1.Destination `json:"deadLetterSink,omitempty"`
	Retry          *int32              `json:"retry,omitempty"`
	Timeout        *string             `json:"timeout,omitempty"`
	BackoffPolicy  *string             `json:"backoffPolicy,omitempty"`
	BackoffDelay   *string             `json:"backoffDelay,omitempty"`
}

// Trigger mirrors eventing.knative.dev/v1 Trigger.
type Trigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              TriggerSpec `json:"spec"`
}

// TriggerSpec mirrors eventing v1 TriggerSpec (new-style filters only).
type TriggerSpec struct {
	Broker     string             `json:"broker"`
	Filters    []Filter           `json:"filters,omitempty"`
	Subscriber duckv1.Destination `json:"subscriber"`
	Delivery   *DeliverySpec      `json:"delivery,omitempty"`
}

// Filter mirrors eventing v1 SubscriptionsAPIFilter: one dialect per element.
type Filter struct {
	All    []Filter          `json:"all,omitempty"`
	Any    []Filter          `json:"any,omitempty"`
	Not    *Filter           `json:"not,omitempty"`
	Exact  map[string]string `json:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty"`
	Suffix map[string]string `json:"suffix,omitempty"`
	CESQL  string            `json:"cesql,omitempty"`
}

// PingSource mirrors sources.knative.dev/v1 PingSource.
type PingSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PingSourceSpec `json:"spec"`
}

// PingSourceSpec mirrors sources v1 PingSourceSpec.
type PingSourceSpec struct {
	duckv1.SourceSpec `json:",inline"`
	Schedule          string `json:"schedule"`
	Timezone          string `json:"timezone,omitempty"`
	ContentType       string `json:"contentType,omitempty"`
	Data              string `json:"data,omitempty"`
}

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
		Spec: BrokerSpec{Delivery: &DeliverySpec{
			DeadLetterSink: &dls,
			Retry:          ptr(int32(5)),
			Timeout:        ptr("PT30S"),
			BackoffPolicy:  ptr("exponential"),
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
		Spec: TriggerSpec{
			Broker:     o.Broker,
			Filters:    filters,
			Subscriber: serviceRef(s.Name),
			Delivery: &DeliverySpec{
				DeadLetterSink: &dls,
				Retry:          ptr(int32(retry)),
				Timeout:        ptr(isoDuration(timeoutDuration(s))),
				BackoffPolicy:  ptr("exponential"),
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
		Spec: PingSourceSpec{
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
