package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rickb777/date/period"
	"knative.dev/eventing/pkg/eventfilter"
	"sigs.k8s.io/yaml"
)

// The Knative Eventing API version and kinds LoadTriggers reads.
const (
	APIVersion  = "eventing.knative.dev/v1"
	KindTrigger = "Trigger"
)

// BackoffPolicy is how the delay between retries grows.
type BackoffPolicy string

// The two policies of Knative's delivery spec.
const (
	BackoffExponential BackoffPolicy = "exponential" // delay × 2^n before retry n
	BackoffLinear      BackoffPolicy = "linear"      // delay × n before retry n
)

// Delivery defaults, used when a trigger leaves the field unset.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultBackoffDelay = 200 * time.Millisecond
	maxBackoff          = 24 * time.Hour
)

// Trigger is one Knative v1 Trigger: which events go to which subscriber, and
// how delivery is retried. Name is unique among a broker's triggers.
type Trigger struct {
	Name   string
	Broker string
	// Attributes is the legacy spec.filter.attributes, ANDed: each attribute
	// must be set and equal to its value; an empty value matches any value of
	// a set attribute, as in Knative.
	Attributes map[string]string
	// Filters is spec.filters, ANDed; when non-empty it wins over Attributes.
	Filters []Filter
	// Subscriber is spec.subscriber.ref.name (a function name), or
	// spec.subscriber.uri when there is no ref.
	Subscriber string
	Delivery   Delivery

	filter eventfilter.Filter // compiled by New
}

// Delivery is a trigger's spec.delivery.
type Delivery struct {
	Retry         int           // retries after the first attempt; total attempts = Retry+1
	BackoffPolicy BackoffPolicy // exponential when empty
	BackoffDelay  time.Duration // DefaultBackoffDelay when zero
	Timeout       time.Duration // per attempt; DefaultTimeout when zero
	// DeadLetterSink is spec.delivery.deadLetterSink.ref.name (or its uri);
	// empty when the trigger has none.
	DeadLetterSink string
}

// Backoff returns the wait before retry n (n ≥ 1): BackoffDelay × 2^n for the
// exponential policy, BackoffDelay × n for the linear one, capped at 24 h.
func (d Delivery) Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	delay := d.BackoffDelay
	if delay <= 0 {
		delay = DefaultBackoffDelay
	}
	var wait time.Duration
	if d.BackoffPolicy == BackoffLinear {
		wait = delay * time.Duration(n)
	} else {
		if n > 40 {
			return maxBackoff
		}
		wait = delay << n
	}
	if wait <= 0 || wait > maxBackoff {
		return maxBackoff
	}
	return wait
}

// withDefaults returns d with the unset fields filled in.
func (d Delivery) withDefaults() Delivery {
	if d.BackoffPolicy == "" {
		d.BackoffPolicy = BackoffExponential
	}
	if d.BackoffDelay <= 0 {
		d.BackoffDelay = DefaultBackoffDelay
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	return d
}

// validate checks what the Knative webhook would refuse and what the broker
// needs: a name, a subscriber, sane delivery numbers and filters.
func (t Trigger) validate() error {
	if t.Name == "" {
		return errors.New("trigger has no name")
	}
	if t.Subscriber == "" {
		return fmt.Errorf("trigger %s: no subscriber (spec.subscriber.ref.name or uri)", t.Name)
	}
	if t.Delivery.Retry < 0 {
		return fmt.Errorf("trigger %s: delivery.retry is %d, must be ≥ 0", t.Name, t.Delivery.Retry)
	}
	switch t.Delivery.BackoffPolicy {
	case "", BackoffExponential, BackoffLinear:
	default:
		return fmt.Errorf("trigger %s: delivery.backoffPolicy %q is neither linear nor exponential", t.Name, t.Delivery.BackoffPolicy)
	}
	if t.Delivery.BackoffDelay < 0 || t.Delivery.Timeout < 0 {
		return fmt.Errorf("trigger %s: negative delivery duration", t.Name)
	}
	return t.validateFilters()
}

// LoadTriggers reads every *.yaml and *.yml file in dir (not its
// sub-folders), each holding one or more YAML documents separated by `---`
// lines, and returns the eventing.knative.dev/v1 Triggers in file-name and
// document order. Documents of other kinds (Broker, PingSource, …) and empty
// documents are ignored. It fails, naming the file and document, on YAML it
// cannot parse, a Trigger of another API version, an unknown filter dialect or
// a filter Eventing's validation refuses, a backoffDelay or timeout that is
// not an ISO-8601 duration of at least 0.1 s resolution, an unknown backoff
// policy, a missing subscriber, or two Triggers with the same name.
func LoadTriggers(dir string) ([]Trigger, error) {
	return loadTriggers(os.DirFS(dir), dir)
}

// LoadTriggersFS is LoadTriggers over the files at the root of fsys (the
// deployable broker's embedded copy of triggers/).
func LoadTriggersFS(fsys fs.FS) ([]Trigger, error) {
	return loadTriggers(fsys, "")
}

func loadTriggers(fsys fs.FS, dir string) ([]Trigger, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read triggers: %w", err)
	}
	var out []Trigger
	seen := map[string]string{}
	for _, ent := range entries {
		name := ent.Name()
		if ent.IsDir() || (!strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml")) {
			continue
		}
		path := filepath.Join(dir, name)
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read triggers: %w", err)
		}
		for i, doc := range splitDocuments(raw) {
			t, ok, err := parseDocument(doc)
			if err != nil {
				return nil, fmt.Errorf("%s document %d: %w", path, i+1, err)
			}
			if !ok {
				continue
			}
			if prev, dup := seen[t.Name]; dup {
				return nil, fmt.Errorf("%s document %d: trigger %s is already defined in %s", path, i+1, t.Name, prev)
			}
			seen[t.Name] = path
			out = append(out, t)
		}
	}
	return out, nil
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitDocuments splits a multi-document YAML file on its `---` lines.
func splitDocuments(raw []byte) [][]byte {
	var docs [][]byte
	for _, d := range documentSeparator.Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// The YAML shape of a Trigger, as far as the broker reads it.
type (
	manifest struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec triggerSpec `json:"spec"`
	}
	triggerSpec struct {
		Broker string `json:"broker"`
		Filter *struct {
			Attributes map[string]string `json:"attributes"`
		} `json:"filter"`
		Filters    []json.RawMessage `json:"filters"`
		Subscriber destination       `json:"subscriber"`
		Delivery   *deliverySpec     `json:"delivery"`
	}
	destination struct {
		Ref *struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"ref"`
		URI string `json:"uri"`
	}
	deliverySpec struct {
		Retry          *int         `json:"retry"`
		BackoffPolicy  string       `json:"backoffPolicy"`
		BackoffDelay   string       `json:"backoffDelay"`
		Timeout        string       `json:"timeout"`
		DeadLetterSink *destination `json:"deadLetterSink"`
	}
)

func (d destination) name() string {
	if d.Ref != nil && d.Ref.Name != "" {
		return d.Ref.Name
	}
	return d.URI
}

// parseDocument decodes one YAML document; ok is false for documents that are
// not Triggers.
func parseDocument(doc []byte) (Trigger, bool, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return Trigger{}, false, fmt.Errorf("parse yaml: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return Trigger{}, false, nil
	}
	var m manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return Trigger{}, false, fmt.Errorf("decode manifest: %w", err)
	}
	if m.Kind == "" {
		return Trigger{}, false, errors.New("document has no kind")
	}
	if m.Kind != KindTrigger {
		return Trigger{}, false, nil
	}
	if m.APIVersion != APIVersion {
		return Trigger{}, false, fmt.Errorf("trigger %s has apiVersion %q, want %s", m.Metadata.Name, m.APIVersion, APIVersion)
	}
	t := Trigger{
		Name:       m.Metadata.Name,
		Broker:     m.Spec.Broker,
		Subscriber: m.Spec.Subscriber.name(),
	}
	if m.Spec.Filter != nil {
		t.Attributes = m.Spec.Filter.Attributes
	}
	for i, raw := range m.Spec.Filters {
		// Strictly, so that a misspelt dialect is an error rather than a
		// filter that matches everything.
		var f Filter
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return Trigger{}, false, fmt.Errorf("trigger %s: spec.filters[%d]: unknown filter dialect or malformed filter: %w", t.Name, i, err)
		}
		t.Filters = append(t.Filters, f)
	}
	if d := m.Spec.Delivery; d != nil {
		if d.Retry != nil {
			t.Delivery.Retry = *d.Retry
		}
		t.Delivery.BackoffPolicy = BackoffPolicy(d.BackoffPolicy)
		if t.Delivery.BackoffDelay, err = parseDuration(d.BackoffDelay); err != nil {
			return Trigger{}, false, fmt.Errorf("trigger %s: delivery.backoffDelay: %w", t.Name, err)
		}
		if t.Delivery.Timeout, err = parseDuration(d.Timeout); err != nil {
			return Trigger{}, false, fmt.Errorf("trigger %s: delivery.timeout: %w", t.Name, err)
		}
		if d.DeadLetterSink != nil {
			t.Delivery.DeadLetterSink = d.DeadLetterSink.name()
			if t.Delivery.DeadLetterSink == "" {
				return Trigger{}, false, fmt.Errorf("trigger %s: delivery.deadLetterSink has neither ref.name nor uri", t.Name)
			}
		}
	}
	if err := t.validate(); err != nil {
		return Trigger{}, false, err
	}
	return t, true, nil
}

// subSecond finds the fractional seconds of an ISO-8601 duration.
var subSecond = regexp.MustCompile(`[.,](\d+)S$`)

// parseDuration parses an ISO-8601 duration (PT1S, PT0.5S, PT2M). The period
// package keeps one decimal of each field, so finer fractions (PT0.05S) are
// refused rather than silently rounded to zero.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	p, err := period.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an ISO-8601 duration (e.g. PT0.5S, PT2M): %w", s, err)
	}
	if m := subSecond.FindStringSubmatch(strings.ToUpper(s)); m != nil && strings.Trim(m[1][1:], "0") != "" {
		return 0, fmt.Errorf("%q: durations finer than 0.1 s are not supported", s)
	}
	if p.IsNegative() {
		return 0, fmt.Errorf("%q is negative", s)
	}
	d, precise := p.Duration()
	if !precise {
		return 0, fmt.Errorf("%q has years, months or days, which have no exact length", s)
	}
	return d, nil
}

// sortedKeys returns m's keys in order, for stable error messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
