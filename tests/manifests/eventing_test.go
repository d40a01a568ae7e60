package manifests_test

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingv1alpha1 "knative.dev/eventing/pkg/apis/eventing/v1alpha1"
	"knative.dev/eventing/pkg/apis/feature"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"sigs.k8s.io/yaml"

	"github.com/cloudphone/cloudphone/assembly/catalog"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/useroutboxredrive"
	"github.com/cloudphone/cloudphone/infra/manifests"
	"github.com/cloudphone/cloudphone/shared/function"
)

// The Eventing objects are decoded into Knative Eventing's own types and
// checked by its own defaulting and validation (the webhook's code), with the
// features the platform needs on; errors and warnings both fail.
type (
	broker      = eventingv1.Broker
	trigger     = eventingv1.Trigger
	filter      = eventingv1.SubscriptionsAPIFilter
	pingSource  = sourcesv1.PingSource
	eventPolicy = eventingv1alpha1.EventPolicy
)

// webhookCtx is a create request in the namespace of meta, with Eventing's
// default features and its OIDC authentication on (EventPolicies are refused
// without it).
func webhookCtx(meta metav1.ObjectMeta) context.Context {
	flags, err := feature.NewFlagsConfigFromMap(map[string]string{string(feature.OIDCAuthentication): string(feature.Enabled)})
	if err != nil {
		panic(err)
	}
	ctx := feature.ToContext(context.Background(), flags)
	return apis.WithinParent(apis.WithinCreate(ctx), meta)
}

// webhookErrors is what Eventing's admission webhook says of one object
// (SetDefaults then Validate), plus the project rules Eventing leaves open:
// every Broker and Trigger names a dead-letter sink, a schedule is a plain
// five-field cron line.
func webhookErrors(obj any) []string {
	var errs []string
	add := func(fe *apis.FieldError) {
		if fe != nil {
			errs = append(errs, fe.Error())
		}
	}
	needsDLS := func(d *eventingduckv1.DeliverySpec) {
		switch {
		case d == nil:
			errs = append(errs, "spec.delivery: missing (every Broker and Trigger needs a dead-letter sink)")
		case d.DeadLetterSink == nil:
			errs = append(errs, "spec.delivery.deadLetterSink: missing")
		}
	}
	switch o := obj.(type) {
	case *broker:
		ctx := webhookCtx(o.ObjectMeta)
		o.SetDefaults(ctx)
		add(o.Validate(ctx))
		needsDLS(o.Spec.Delivery)
	case *trigger:
		ctx := webhookCtx(o.ObjectMeta)
		o.SetDefaults(ctx)
		add(o.Validate(ctx))
		needsDLS(o.Spec.Delivery)
	case *pingSource:
		ctx := webhookCtx(o.ObjectMeta)
		o.SetDefaults(ctx)
		add(o.Validate(ctx))
		if err := manifests.ParseCron(o.Spec.Schedule); err != nil {
			errs = append(errs, "spec.schedule: "+err.Error())
		}
	case *eventPolicy:
		ctx := webhookCtx(o.ObjectMeta)
		o.SetDefaults(ctx)
		add(o.Validate(ctx))
	default:
		errs = append(errs, fmt.Sprintf("unexpected object %T", obj))
	}
	return errs
}

// projectErrors applies the platform's routing rules to a Trigger: its
// subscriber (and dead-letter sink) is a rendered Knative Service, it routes a
// type its subscriber consumes, and it never routes back a type the
// subscriber replies with (a loop through the broker).
func projectErrors(tr *trigger, services map[string]bool, specOf func(string) (function.Spec, bool)) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if tr.Spec.Broker != "cloudphone" {
		bad("broker %q, want cloudphone", tr.Spec.Broker)
	}
	isService := func(d *duckv1.Destination) bool {
		return d != nil && d.Ref != nil && d.Ref.APIVersion == "serving.knative.dev/v1" && d.Ref.Kind == "Service" && services[d.Ref.Name]
	}
	if !isService(&tr.Spec.Subscriber) {
		bad("subscriber %+v is not a Service in %s", tr.Spec.Subscriber.Ref, manifests.KnativeDir)
	}
	if tr.Spec.Delivery != nil && !isService(tr.Spec.Delivery.DeadLetterSink) {
		bad("dead-letter sink is not a Service in %s", manifests.KnativeDir)
	}
	var types []string
	for _, f := range tr.Spec.Filters {
		if t, ok := f.Exact["type"]; ok {
			types = append(types, t)
		}
	}
	if len(types) != 1 {
		bad("want exactly one exact type filter, found %v", types)
		return errs
	}
	if tr.Spec.Subscriber.Ref == nil {
		return errs
	}
	sub, ok := specOf(tr.Spec.Subscriber.Ref.Name)
	if !ok {
		bad("subscriber %s is not in the catalog", tr.Spec.Subscriber.Ref.Name)
		return errs
	}
	if slices.Contains(sub.Replies, types[0]) {
		bad("loop: %s replies with %s, which this Trigger routes back to it", sub.Name, types[0])
	}
	routed := types[0]
	if routed == manifests.PingType {
		for _, f := range tr.Spec.Filters {
			if t, ok := f.Exact[manifests.PingTypeExtension]; ok {
				routed = t
			}
		}
	}
	if !slices.Contains(sub.Consumes, routed) {
		bad("%s does not consume %s", sub.Name, routed)
	}
	return errs
}

type eventingObjects struct {
	brokers       map[string]*broker
	triggers      map[string]*trigger
	pingSources   map[string]*pingSource
	eventPolicies map[string]*eventPolicy
	services      map[string]bool
}

func decodeEventing(t *testing.T, r repo) eventingObjects {
	t.Helper()
	o := eventingObjects{map[string]*broker{}, map[string]*trigger{}, map[string]*pingSource{}, map[string]*eventPolicy{}, map[string]bool{}}
	for _, p := range r.services() {
		o.services[strings.TrimSuffix(path.Base(p), ".yaml")] = true
	}
	for _, p := range r.under(manifests.TriggerDir) {
		b := r.files[p]
		var target any
		switch k := kind(b); k {
		case "Broker":
			o.brokers[p] = &broker{}
			target = o.brokers[p]
		case "Trigger":
			o.triggers[p] = &trigger{}
			target = o.triggers[p]
		case "PingSource":
			o.pingSources[p] = &pingSource{}
			target = o.pingSources[p]
		case "EventPolicy":
			o.eventPolicies[p] = &eventPolicy{}
			target = o.eventPolicies[p]
		default:
			t.Fatalf("%s: unexpected kind %q", p, k)
		}
		if err := yaml.UnmarshalStrict(b, target); err != nil {
			t.Fatalf("%s: strict decode: %v", p, err)
		}
	}
	return o
}

func TestEventingObjectsPassWebhookAndProjectRules(t *testing.T) {
	t.Parallel()
	r := setup(t)
	o := decodeEventing(t, r)
	if len(o.brokers) != 1 {
		t.Errorf("want exactly one Broker, found %d", len(o.brokers))
	}
	check := func(p string, obj any, meta metav1.ObjectMeta, wantName string, extra []string) {
		errs := append(webhookErrors(obj), extra...)
		if meta.Namespace != "cloudphone" {
			errs = append(errs, "namespace "+meta.Namespace)
		}
		if meta.Name != wantName {
			errs = append(errs, fmt.Sprintf("name %q, want %q", meta.Name, wantName))
		}
		for _, e := range errs {
			t.Errorf("%s: %s", p, e)
		}
	}
	for p, b := range o.brokers {
		check(p, b, b.ObjectMeta, "cloudphone", nil)
		if b.Spec.Delivery != nil && b.Spec.Delivery.DeadLetterSink != nil && (b.Spec.Delivery.DeadLetterSink.Ref == nil || !o.services[b.Spec.Delivery.DeadLetterSink.Ref.Name]) {
			t.Errorf("%s: dead-letter sink is not a Service in %s", p, manifests.KnativeDir)
		}
	}
	for p, tr := range o.triggers {
		check(p, tr, tr.ObjectMeta, fileName(p), projectErrors(tr, o.services, catalog.ByName))
	}
	for p, ps := range o.pingSources {
		var extra []string
		if ref := ps.Spec.Sink.Ref; ref == nil || ref.Kind != "Broker" || ref.Name != "cloudphone" {
			extra = append(extra, "sink is not the cloudphone Broker")
		}
		check(p, ps, ps.ObjectMeta, fileName(p), extra)
	}

	// The EventPolicies let each sender send exactly the types the catalog
	// declares for it, to the Broker.
	policy := function.EventPolicy(catalog.All())
	for _, sender := range policy.Senders() {
		p := manifests.TriggerDir + "/" + manifests.EventPolicyName(sender) + ".yaml"
		ep, ok := o.eventPolicies[p]
		if !ok {
			t.Errorf("no EventPolicy lets %s send", sender)
			continue
		}
		check(p, ep, ep.ObjectMeta, fileName(p), nil)
		var got []string
		for _, f := range ep.Spec.Filters {
			for _, a := range f.Any {
				got = append(got, a.Exact["type"])
			}
		}
		if want := policy.Types(sender); !slices.Equal(got, want) {
			t.Errorf("%s: allows %v, the catalog %v", p, got, want)
		}
		if len(ep.Spec.To) != 1 || ep.Spec.To[0].Ref == nil || ep.Spec.To[0].Ref.Kind != "Broker" || ep.Spec.To[0].Ref.Name != "cloudphone" {
			t.Errorf("%s: not to the cloudphone Broker: %+v", p, ep.Spec.To)
		}
	}
	if len(o.eventPolicies) != len(policy.Senders()) {
		t.Errorf("%d EventPolicies for %d senders", len(o.eventPolicies), len(policy.Senders()))
	}

	// Every (consumed type, subscriber) has its Trigger, every schedule its
	// PingSource.
	for _, s := range catalog.All() {
		for _, typ := range s.Consumes {
			if _, ok := o.triggers[manifests.TriggerDir+"/"+manifests.TriggerName(typ, s.Name)+".yaml"]; !ok {
				t.Errorf("no Trigger routes %s to %s", typ, s.Name)
			}
		}
		if s.Schedule != "" {
			ps, ok := o.pingSources[manifests.TriggerDir+"/"+manifests.PingSourceName(s.Name)+".yaml"]
			if !ok {
				t.Errorf("no PingSource drives %s", s.Name)
			} else if ps.Spec.Schedule != s.Schedule {
				t.Errorf("PingSource of %s runs %q, catalog says %q", s.Name, ps.Spec.Schedule, s.Schedule)
			}
		}
	}
}

func TestEventingRulesRejectBrokenObjects(t *testing.T) {
	t.Parallel()
	r := setup(t)
	o := decodeEventing(t, r)
	validTrigger := func() *trigger {
		tr := &trigger{}
		b := r.files[manifests.TriggerDir+"/"+manifests.TriggerName(userevents.EventOutboxRedriveRequested, useroutboxredrive.Name)+".yaml"]
		if err := yaml.UnmarshalStrict(b, tr); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	validPolicy := func() *eventPolicy {
		ep := &eventPolicy{}
		if err := yaml.UnmarshalStrict(r.files[manifests.TriggerDir+"/"+manifests.EventPolicyName("user")+".yaml"], ep); err != nil {
			t.Fatal(err)
		}
		return ep
	}
	validPing := func() *pingSource {
		ps := &pingSource{}
		if err := yaml.UnmarshalStrict(r.files[manifests.TriggerDir+"/"+manifests.PingSourceName("user-outbox-redrive")+".yaml"], ps); err != nil {
			t.Fatal(err)
		}
		return ps
	}
	if errs := append(webhookErrors(validTrigger()), projectErrors(validTrigger(), o.services, catalog.ByName)...); len(errs) > 0 {
		t.Fatalf("the base Trigger must be valid: %v", errs)
	}
	if errs := webhookErrors(validPolicy()); len(errs) > 0 {
		t.Fatalf("the base EventPolicy must be valid: %v", errs)
	}
	if errs := webhookErrors(validPing()); len(errs) > 0 {
		t.Fatalf("the base PingSource must be valid: %v", errs)
	}
	str := func(s string) *string { return &s }
	cases := []struct {
		name   string
		obj    func() any
		want   string
		viaOwn bool // a project rule rather than a webhook rule
	}{
		{"no broker", func() any { tr := validTrigger(); tr.Spec.Broker = ""; return tr }, "missing field(s): spec.broker", false},
		{"two dialects in one filter", func() any {
			tr := validTrigger()
			tr.Spec.Filters[0].Prefix = map[string]string{"source": "/cloudphone"}
			return tr
		}, "multiple dialects found", false},
		{"upper-case attribute", func() any {
			tr := validTrigger()
			tr.Spec.Filters = append(tr.Spec.Filters, filter{Exact: map[string]string{"Type": "x"}})
			return tr
		}, "Attribute name must start with a letter", false},
		{"attribute starting with a digit", func() any {
			tr := validTrigger()
			tr.Spec.Filters = append(tr.Spec.Filters, filter{Exact: map[string]string{"1type": "x"}})
			return tr
		}, "Attribute name must start with a letter", false},
		{"negative retry", func() any {
			tr := validTrigger()
			tr.Spec.Delivery.Retry = new(int32)
			*tr.Spec.Delivery.Retry = -1
			return tr
		}, "invalid value: -1: spec.delivery.retry", false},
		{"unknown backoff policy", func() any {
			tr := validTrigger()
			p := eventingduckv1.BackoffPolicyType("fibonacci")
			tr.Spec.Delivery.BackoffPolicy = &p
			return tr
		}, "invalid value: fibonacci: spec.delivery.backoffPolicy", false},
		{"Go-style backoff delay", func() any { tr := validTrigger(); tr.Spec.Delivery.BackoffDelay = str("500ms"); return tr }, "invalid value: 500ms: spec.delivery.backoffDelay", false},
		{"Go-style timeout", func() any { tr := validTrigger(); tr.Spec.Delivery.Timeout = str("30s"); return tr }, "invalid value: 30s: spec.delivery.timeout", false},
		{"no delivery", func() any { tr := validTrigger(); tr.Spec.Delivery = nil; return tr }, "needs a dead-letter sink", false},
		{"no dead-letter sink", func() any { tr := validTrigger(); tr.Spec.Delivery.DeadLetterSink = nil; return tr }, "deadLetterSink: missing", false},
		{"dead-letter ref without apiVersion", func() any {
			tr := validTrigger()
			tr.Spec.Delivery.DeadLetterSink.Ref.APIVersion = ""
			return tr
		}, "missing field(s): spec.delivery.deadLetterSink.ref.apiVersion", false},
		{"subscriber without ref or uri", func() any { tr := validTrigger(); tr.Spec.Subscriber = duckv1.Destination{}; return tr }, "expected at least one, got none", false},
		{"subscriber ref without kind", func() any { tr := validTrigger(); tr.Spec.Subscriber.Ref.Kind = ""; return tr }, "kind", false},
		{"subscriber is not a rendered Service", func() any { tr := validTrigger(); tr.Spec.Subscriber.Ref.Name = "nobody"; return tr }, "is not a Service in infra/knative", true},
		{"reply loop", func() any { return validTrigger() }, "loop", true},
		{"type the subscriber does not consume", func() any {
			tr := validTrigger()
			tr.Spec.Filters[0].Exact["type"] = userevents.EventRegistered
			return tr
		}, "does not consume", true},
		{"PingSource with a bad schedule", func() any { ps := validPing(); ps.Spec.Schedule = "*/5 * * *"; return ps }, "want 5 fields", false},
		{"PingSource minute out of range", func() any { ps := validPing(); ps.Spec.Schedule = "61 * * * *"; return ps }, "minute", false},
		{"PingSource without sink", func() any { ps := validPing(); ps.Spec.Sink = duckv1.Destination{}; return ps }, "expected at least one, got none", false},
		{"PingSource with a bad extension name", func() any {
			ps := validPing()
			ps.Spec.CloudEventOverrides.Extensions["cloudphone-type"] = "x"
			return ps
		}, "alphanumeric", false},
		{"PingSource with data and dataBase64", func() any { ps := validPing(); ps.Spec.DataBase64 = "e30="; return ps }, "expected exactly one, got both: spec.data, spec.dataBase64", false},
		{"EventPolicy sender with neither ref nor sub", func() any {
			ep := validPolicy()
			ep.Spec.From = append(ep.Spec.From, eventingv1alpha1.EventPolicySpecFrom{})
			return ep
		}, "expected exactly one, got neither", false},
		{"EventPolicy with a wildcard inside a sub", func() any {
			ep := validPolicy()
			ep.Spec.From[0].Sub = str("system:*:cloudphone")
			return ep
		}, "only allowed as suffix", false},
		{"EventPolicy filter with two dialects", func() any {
			ep := validPolicy()
			ep.Spec.Filters[0].Prefix = map[string]string{"type": "cloudphone."}
			return ep
		}, "multiple dialects", false},
		{"Broker without dead-letter sink", func() any {
			for _, b := range o.brokers {
				c := *b
				d := *c.Spec.Delivery
				d.DeadLetterSink = nil
				c.Spec.Delivery = &d
				return &c
			}
			return nil
		}, "deadLetterSink: missing", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			specOf := catalog.ByName
			if tc.name == "reply loop" {
				// The subscriber is made to reply with the type it consumes.
				specOf = func(name string) (function.Spec, bool) {
					s, ok := catalog.ByName(name)
					s.Replies = append(s.Replies, s.Consumes...)
					return s, ok
				}
			}
			var errs []string
			switch obj := tc.obj().(type) {
			case *trigger:
				if tc.viaOwn {
					errs = projectErrors(obj, o.services, specOf)
				} else {
					errs = webhookErrors(obj)
				}
			default:
				errs = webhookErrors(obj)
			}
			if !containsAny(errs, tc.want) {
				t.Fatalf("want an error mentioning %q, got %v", tc.want, errs)
			}
		})
	}
}

func containsAny(errs []string, want string) bool {
	for _, e := range errs {
		if strings.Contains(e, want) {
			return true
		}
	}
	return false
}

func fileName(p string) string { return strings.TrimSuffix(path.Base(p), ".yaml") }
