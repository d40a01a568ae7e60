package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Filter is one element of a Trigger's spec.filters, in the dialects of
// Knative's new filters. A filter loaded from YAML sets exactly one field; a
// filter built in Go may set several, which are ANDed. The zero Filter matches
// every event.
type Filter struct {
	Exact  map[string]string // every attribute present and equal
	Prefix map[string]string // every attribute present and starting with the value
	Suffix map[string]string // every attribute present and ending with the value
	All    []Filter          // every filter matches
	Any    []Filter          // at least one filter matches (an empty list matches)
	Not    *Filter           // the filter does not match
}

// attrName is the attribute name rule of Knative's trigger webhook.
var attrName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// Matches reports whether e passes f.
func (f Filter) Matches(e event.Event) bool {
	for name, want := range f.Exact {
		if got, ok := attribute(e, name); !ok || got != want {
			return false
		}
	}
	for name, want := range f.Prefix {
		if got, ok := attribute(e, name); !ok || !strings.HasPrefix(got, want) {
			return false
		}
	}
	for name, want := range f.Suffix {
		if got, ok := attribute(e, name); !ok || !strings.HasSuffix(got, want) {
			return false
		}
	}
	for _, sub := range f.All {
		if !sub.Matches(e) {
			return false
		}
	}
	if len(f.Any) > 0 {
		matched := false
		for _, sub := range f.Any {
			if sub.Matches(e) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	if f.Not != nil && f.Not.Matches(e) {
		return false
	}
	return true
}

// validate refuses what Knative's webhook refuses: bad attribute names and
// empty values in exact/prefix/suffix.
func (f Filter) validate() error {
	for dialect, m := range map[string]map[string]string{"exact": f.Exact, "prefix": f.Prefix, "suffix": f.Suffix} {
		for _, name := range sortedKeys(m) {
			if !attrName.MatchString(name) {
				return fmt.Errorf("%s: attribute name %q must match %s", dialect, name, attrName)
			}
			if m[name] == "" {
				return fmt.Errorf("%s: attribute %q has an empty value", dialect, name)
			}
		}
	}
	for i, sub := range f.All {
		if err := sub.validate(); err != nil {
			return fmt.Errorf("all[%d]: %w", i, err)
		}
	}
	for i, sub := range f.Any {
		if err := sub.validate(); err != nil {
			return fmt.Errorf("any[%d]: %w", i, err)
		}
	}
	if f.Not != nil {
		if err := f.Not.validate(); err != nil {
			return fmt.Errorf("not: %w", err)
		}
	}
	return nil
}

// parseFilter decodes one spec.filters element, which must use exactly one
// dialect.
func parseFilter(raw json.RawMessage) (Filter, error) {
	var dialects map[string]json.RawMessage
	if err := json.Unmarshal(raw, &dialects); err != nil {
		return Filter{}, fmt.Errorf("a filter is a map of one dialect: %w", err)
	}
	switch len(dialects) {
	case 0:
		return Filter{}, errors.New("empty filter: use one of exact, prefix, suffix, all, any, not")
	case 1:
	default:
		return Filter{}, fmt.Errorf("multiple dialects found (%s): use one per filter", strings.Join(sortedKeys(dialects), ", "))
	}
	var f Filter
	for dialect, body := range dialects {
		var err error
		switch dialect {
		case "exact":
			err = json.Unmarshal(body, &f.Exact)
		case "prefix":
			err = json.Unmarshal(body, &f.Prefix)
		case "suffix":
			err = json.Unmarshal(body, &f.Suffix)
		case "all":
			f.All, err = parseFilterList(body)
		case "any":
			f.Any, err = parseFilterList(body)
		case "not":
			var sub Filter
			sub, err = parseFilter(body)
			f.Not = &sub
		case "cesql":
			return Filter{}, errors.New("the cesql dialect is not supported by the local broker: use exact, prefix, suffix, all, any or not")
		default:
			return Filter{}, fmt.Errorf("unknown filter dialect %q: use exact, prefix, suffix, all, any or not", dialect)
		}
		if err != nil {
			return Filter{}, fmt.Errorf("%s: %w", dialect, err)
		}
	}
	return f, f.validate()
}

func parseFilterList(raw json.RawMessage) ([]Filter, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("want a list of filters: %w", err)
	}
	out := make([]Filter, 0, len(items))
	for i, item := range items {
		f, err := parseFilter(item)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// attribute returns the string form of e's context attribute or extension
// name, and whether e has it.
func attribute(e event.Event, name string) (string, bool) {
	var v string
	switch name {
	case "specversion":
		v = e.SpecVersion()
	case "id":
		v = e.ID()
	case "source":
		v = e.Source()
	case "type":
		v = e.Type()
	case "subject":
		v = e.Subject()
	case "datacontenttype":
		v = e.DataContentType()
	case "dataschema":
		v = e.DataSchema()
	case "time":
		if t := e.Time(); !t.IsZero() {
			v, _ = types.Format(t)
		}
	default:
		ext, ok := e.Extensions()[name]
		if !ok {
			return "", false
		}
		s, err := types.Format(ext)
		return s, err == nil
	}
	return v, v != ""
}
