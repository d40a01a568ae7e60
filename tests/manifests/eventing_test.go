package manifests_test

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rickb777/date/period"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"sigs.k8s.io/yaml"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/useroutboxredrive"
	"github.com/cloudphone/cloudphone/infra/manifests"
	"github.com/cloudphone/cloudphone/shared/function"
)

// The Eventing v1 types, mirrored here field for field from knative/eventing
// (pkg/apis/eventing/v1, pkg/apis/duck/v1, pkg/apis/sources/v1) because that
// module is not available; strict decoding into them rejects unknown fields.
type (
	broker struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Config   *duckv1.KReference `json:"config,omitempty"`
			Delivery *delivery          `json:"delivery,omitempty"`
		} `json:"spec"`
	}
	delivery struct {
		DeadLetterSink *duckv1.Destination `json:"deadLetterSink,omitempty"`
		Retry          *int32              `json:"retry,omitempty"`
		Timeout        *string             `json:"timeout,omitempty"`
		BackoffPolicy  *string             `json:"backoffPolicy,omitempty"`
		BackoffDelay   *string             `json:"backoffDelay,omitempty"`
		RetryAfterMax  *string             `json:"retryAfterMax,omitempty"`
		Format         *string             `json:"format,omitempty"`
	}
	trigger struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Broker     string             `json:"broker"`
			Filter     *legacyFilter      `json:"filter,omitempty"`
			Filters    []filter           `json:"filters,omitempty"`
			Subscriber duckv1.Destination `json:"subscriber"`
			Delivery   *delivery          `json:"delivery,omitempty"`
		} `json:"spec"`
	}
	legacyFilter struct {
		Attributes map[string]string `json:"attributes,omitempty"`
	}
	filter struct {
		All    []filter          `json:"all,omitempty"`
		Any    []filter          `json:"any,omitempty"`
		Not    *filter           `json:"not,omitempty"`
		Exact  map[string]string `json:"exact,omitempty"`
		Prefix map[string]string `json:"prefix,omitempty"`
		Suffix map[string]string `json:"suffix,omitempty"`
		CESQL  string            `json:"cesql,omitempty"`
	}
	pingSource struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			duckv1.SourceSpec `json:",inline"`
			Schedule          string `json:"schedule,omitempty"`
			Timezone          string `json:"timezone,omitempty"`
			ContentType       string `json:"contentType,omitempty"`
			Data              string `json:"data,omitempty"`
			DataBase64        string `json:"dataBase64,omitempty"`
		} `json:"spec"`
	}
)

var attributeName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// webhookErrors mirrors the Eventing admission webhook for one object.
func webhookErrors(obj any) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	dest := func(field string, meta metav1.ObjectMeta, d *duckv1.Destination) {
		if d == nil {
			bad("%s: missing", field)
			return
		}
		ctx := apis.WithinParent(apis.WithinCreate(context.Background()), meta)
		if fe := d.Validate(ctx); fe != nil {
			bad("%s: %v", field, fe)
		}
	}
	switch o := obj.(type) {
	case *broker:
		if o.Annotations["eventing.knative.dev/broker.class"] == "" {
			bad("broker: no eventing.knative.dev/broker.class annotation")
		}
		errs = append(errs, deliveryErrors("spec.delivery", o.ObjectMeta, o.Spec.Delivery, dest)...)
	case *trigger:
		if o.Spec.Broker == "" {
			bad("spec.broker: missing")
		}
		if o.Spec.Filter != nil {
			for a := range o.Spec.Filter.Attributes {
				if !attributeName.MatchString(a) {
					bad("spec.filter.attributes: invalid attribute name %q", a)
				}
			}
		}
		for i, f := range o.Spec.Filters {
			errs = append(errs, filterErrors(fmt.Sprintf("spec.filters[%d]", i), f)...)
		}
		dest("spec.subscriber", o.ObjectMeta, &o.Spec.Subscriber)
		errs = append(errs, deliveryErrors("spec.delivery", o.ObjectMeta, o.Spec.Delivery, dest)...)
	case *pingSource:
		ctx := apis.WithinParent(apis.WithinCreate(context.Background()), o.ObjectMeta)
		if fe := o.Spec.SourceSpec.Validate(ctx); fe != nil {
			bad("spec: %v", fe)
		}
		if err := manifests.ParseCron(o.Spec.Schedule); err != nil {
			bad("spec.schedule: %v", err)
		}
		if o.Spec.Data != "" && o.Spec.DataBase64 != "" {
			bad("spec: data and dataBase64 are mutually exclusive")
		}
	default:
		bad("unexpected object %T", obj)
	}
	return errs
}

// deliveryErrors mirrors eventing duck v1 DeliverySpec.Validate, plus the
// project rule that every delivery names a dead-letter sink.
func deliveryErrors(field string, meta metav1.ObjectMeta, d *delivery, dest func(string, metav1.ObjectMeta, *duckv1.Destination)) []string {
	if d == nil {
		return []string{field + ": missing (every Broker and Trigger needs a dead-letter sink)"}
	}
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if d.DeadLetterSink == nil {
		bad("%s.deadLetterSink: missing", field)
	} else {
		dest(field+".deadLetterSink", meta, d.DeadLetterSink)
	}
	if d.Retry != nil && *d.Retry < 0 {
		bad("%s.retry: %d < 0", field, *d.Retry)
	}
	if d.BackoffPolicy != nil && *d.BackoffPolicy != "linear" && *d.BackoffPolicy != "exponential" {
		bad("%s.backoffPolicy: %q is neither linear nor exponential", field, *d.BackoffPolicy)
	}
	for name, v := range map[string]*string{"backoffDelay": d.BackoffDelay, "timeout": d.Timeout, "retryAfterMax": d.RetryAfterMax} {
		if v == nil {
			continue
		}
		p, err := period.Parse(*v)
		if err != nil {
			bad("%s.%s: %q is not an ISO-8601 duration: %v", field, name, *v, err)
		} else if name == "timeout" && (p.IsZero() || p.IsNegative()) {
			bad("%s.timeout: %q is not positive", field, *v)
		}
	}
	if d.Format != nil && *d.Format != "json" && *d.Format != "binary" {
		bad("%s.format: %q is neither json nor binary", field, *d.Format)
	}
	return errs
}

// filterErrors mirrors the webhook's SubscriptionsAPIFilter rules.
func filterErrors(field string, f filter) []string {
	var errs []string
	bad := func(fm string, a ...any) { errs = append(errs, fmt.Sprintf(fm, a...)) }
	dialects := 0
	for _, set := range []bool{f.All != nil, f.Any != nil, f.Not != nil, f.Exact != nil, f.Prefix != nil, f.Suffix != nil, f.CESQL != ""} {
		if set {
			dialects++
		}
	}
	if dialects != 1 {
		bad("%s: want exactly one dialect, found %d", field, dialects)
	}
	for name, m := range map[string]map[string]string{"exact": f.Exact, "prefix": f.Prefix, "suffix": f.Suffix} {
		if m == nil {
			continue
		}
		if len(m) != 1 {
			bad("%s.%s: can have only one key-value, has %d", field, name, len(m))
		}
		for a := range m {
			if !attributeName.MatchString(a) {
				bad("%s.%s: invalid attribute name %q", field, name, a)
			}
		}
	}
	for name, list := range map[string][]filter{"all": f.All, "any": f.Any} {
		if list != nil && len(list) == 0 {
			bad("%s.%s: must contain at least one nested filter", field, name)
		}
		for i, g := range list {
			errs = append(errs, filterErrors(fmt.Sprintf("%s.%s[%d]", field, name, i), g)...)
		}
	}
	if f.Not != nil {
		errs = append(errs, filterErrors(field+".not", *f.Not)...)
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
	brokers     map[string]*broker
	triggers    map[string]*trigger
	pingSources map[string]*pingSource
	services    map[string]bool
}

func decodeEventing(t *testing.T, r repo) eventingObjects {
	t.Helper()
	o := eventingObjects{map[string]*broker{}, map[string]*trigger{}, map[string]*pingSource{}, map[string]bool{}}
	for _, p := range r.under(manifests.KnativeDir) {
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
		b := r.files[manifests.TriggerDir+"/"+manifests.TriggerName(user.EventOutboxRedriveRequested, useroutboxredrive.Name)+".yaml"]
		if err := yaml.UnmarshalStrict(b, tr); err != nil {
			t.Fatal(err)
		}
		return tr
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
		{"no broker", func() any { tr := validTrigger(); tr.Spec.Broker = ""; return tr }, "spec.broker: missing", false},
		{"two dialects in one filter", func() any {
			tr := validTrigger()
			tr.Spec.Filters[0].Prefix = map[string]string{"source": "/cloudphone"}
			return tr
		}, "exactly one dialect", false},
		{"two attributes in one exact", func() any {
			tr := validTrigger()
			tr.Spec.Filters[0].Exact["source"] = "/x"
			return tr
		}, "only one key-value", false},
		{"upper-case attribute", func() any {
			tr := validTrigger()
			tr.Spec.Filters = append(tr.Spec.Filters, filter{Exact: map[string]string{"Type": "x"}})
			return tr
		}, "invalid attribute name", false},
		{"attribute starting with a digit", func() any {
			tr := validTrigger()
			tr.Spec.Filters = append(tr.Spec.Filters, filter{Exact: map[string]string{"1type": "x"}})
			return tr
		}, "invalid attribute name", false},
		{"negative retry", func() any {
			tr := validTrigger()
			tr.Spec.Delivery.Retry = new(int32)
			*tr.Spec.Delivery.Retry = -1
			return tr
		}, "retry: -1 < 0", false},
		{"unknown backoff policy", func() any { tr := validTrigger(); tr.Spec.Delivery.BackoffPolicy = str("fibonacci"); return tr }, "neither linear nor exponential", false},
		{"Go-style backoff delay", func() any { tr := validTrigger(); tr.Spec.Delivery.BackoffDelay = str("500ms"); return tr }, "not an ISO-8601 duration", false},
		{"Go-style timeout", func() any { tr := validTrigger(); tr.Spec.Delivery.Timeout = str("30s"); return tr }, "not an ISO-8601 duration", false},
		{"no delivery", func() any { tr := validTrigger(); tr.Spec.Delivery = nil; return tr }, "needs a dead-letter sink", false},
		{"no dead-letter sink", func() any { tr := validTrigger(); tr.Spec.Delivery.DeadLetterSink = nil; return tr }, "deadLetterSink: missing", false},
		{"dead-letter ref without apiVersion", func() any {
			tr := validTrigger()
			tr.Spec.Delivery.DeadLetterSink.Ref.APIVersion = ""
			return tr
		}, "deadLetterSink: missing field(s): ref.apiVersion", false},
		{"subscriber without ref or uri", func() any { tr := validTrigger(); tr.Spec.Subscriber = duckv1.Destination{}; return tr }, "expected at least one, got none", false},
		{"subscriber ref without kind", func() any { tr := validTrigger(); tr.Spec.Subscriber.Ref.Kind = ""; return tr }, "kind", false},
		{"subscriber is not a rendered Service", func() any { tr := validTrigger(); tr.Spec.Subscriber.Ref.Name = "nobody"; return tr }, "is not a Service in infra/knative", true},
		{"reply loop", func() any { return validTrigger() }, "loop", true},
		{"type the subscriber does not consume", func() any {
			tr := validTrigger()
			tr.Spec.Filters[0].Exact["type"] = user.EventRegistered
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
		{"PingSource with data and dataBase64", func() any { ps := validPing(); ps.Spec.DataBase64 = "e30="; return ps }, "mutually exclusive", false},
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
