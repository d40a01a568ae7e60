// Package catalog lists every function of the platform: the single source of
// truth from which the Knative Services, the Triggers, the PingSources and
// stack.yml are rendered (make manifests), by which the local platform routes
// requests and events, and from which every process builds the functions it
// hosts.
//
// The catalog declares nothing itself: each function package exports its
// function.Entry, each context lists its entries and event types in its
// <context>functions package, and the catalog concatenates those lists. A new
// context adds its two lists here.
package catalog

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudphone/cloudphone/functions/app/appfunctions"
	"github.com/cloudphone/cloudphone/functions/billing/billingfunctions"
	"github.com/cloudphone/cloudphone/functions/console"
	"github.com/cloudphone/cloudphone/functions/device/devicefunctions"
	"github.com/cloudphone/cloudphone/functions/notification/notificationfunctions"
	"github.com/cloudphone/cloudphone/functions/scheduler/deadletter"
	"github.com/cloudphone/cloudphone/functions/scheduler/schedulerfunctions"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/shared/function"
)

// contextEntries is every function of the contexts, context by context; a new
// context adds its list.
var contextEntries = slices.Concat(userfunctions.Entries, schedulerfunctions.Entries, billingfunctions.Entries, devicefunctions.Entries,
	appfunctions.Entries, notificationfunctions.Entries)

// entries adds the web console, which shows the parts whose API the contexts serve.
var entries = append(slices.Clip(contextEntries), console.EntryOver(contextEntries))

// eventTypes is every event type, context by context; a new context adds its
// list.
var eventTypes = slices.Concat(userfunctions.Events, billingfunctions.Events, devicefunctions.Events, appfunctions.Events,
	notificationfunctions.Events)

// DeadLetter is the function every Broker and Trigger names as its dead-letter
// sink (see deadletter.Name).
const DeadLetter = deadletter.Name

// Platform defaults for a function that leaves the field zero.
const (
	DefaultTimeoutSeconds = 30
	DefaultRetry          = 3
	DefaultBackoffDelay   = time.Second
)

// Deployment is what a function needs from its platform beyond routing: the
// Secrets and Delivery of its spec.
type Deployment struct {
	// Secrets are the secret files the function reads; DATABASE_URL and
	// REDIS_URL are given to every function and are not listed.
	Secrets []string
	// Delivery overrides the Trigger delivery of the function's subscriptions;
	// nil means DefaultRetry retries, exponential from DefaultBackoffDelay.
	Delivery *Delivery
}

// Delivery is the retry policy of the Triggers that feed one function.
type Delivery = function.Delivery

// Entries returns every function of the platform, ready to host, grouped by
// context in a stable order. The specs are fresh copies.
func Entries() []function.Entry {
	out := make([]function.Entry, len(entries))
	for i, e := range entries {
		out[i] = function.Entry{Spec: clone(e.Spec), Build: e.Build}
	}
	return out
}

// Entry returns the named function, or false when the catalog has none.
func Entry(name string) (function.Entry, bool) {
	for _, e := range entries {
		if e.Spec.Name == name {
			return function.Entry{Spec: clone(e.Spec), Build: e.Build}, true
		}
	}
	return function.Entry{}, false
}

// Check reports every entry that is wrong on its own (function.Entry.Check)
// and every name or route two entries share.
func Check() error {
	var errs []error
	names, routes := map[string]bool{}, map[string]string{}
	for _, e := range entries {
		if err := e.Check(); err != nil {
			errs = append(errs, err)
		}
		if names[e.Spec.Name] {
			errs = append(errs, fmt.Errorf("function %s listed twice", e.Spec.Name))
		}
		names[e.Spec.Name] = true
		for _, r := range e.Spec.Routes {
			if other, dup := routes[r]; dup {
				errs = append(errs, fmt.Errorf("route %q served by %s and %s", r, other, e.Spec.Name))
			}
			routes[r] = e.Spec.Name
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("catalog: %w", errors.Join(errs...))
}

// All returns every function of the platform, grouped by context in a stable
// order. The result is a fresh copy: changing it does not change the catalog.
func All() []function.Spec {
	out := make([]function.Spec, len(entries))
	for i, e := range entries {
		out[i] = clone(e.Spec)
	}
	return out
}

// ByName returns the function called name, or false when there is none.
func ByName(name string) (function.Spec, bool) {
	if e, ok := Entry(name); ok {
		return e.Spec, true
	}
	return function.Spec{}, false
}

// DeploymentOf returns the platform needs of the function called name; a
// function without an entry needs no secrets and takes the default delivery.
func DeploymentOf(name string) Deployment {
	s, _ := ByName(name)
	return Deployment{Secrets: s.Secrets, Delivery: s.Delivery}
}

// BundleOf names the OpenFaaS function that serves spec. OpenFaaS Community
// Edition allows 15 functions, so the functions of one context share one
// image and one deployment, "cloudphone-<context>", routed by path or event
// type. A scheduled function is no exception: the broker sends its ticks as
// events, routed like any other. A long-running function (MinScale > 0) gets
// a bundle of its own.
func BundleOf(spec function.Spec) string {
	if spec.MinScale > 0 {
		// A long-running function (device-runtime) keeps its own scale and
		// mounts (the Docker socket or a host's TLS certificates).
		return "cloudphone-" + spec.Name
	}
	return "cloudphone-" + spec.Context
}

// Bundles groups All by OpenFaaS function (see BundleOf): bundle name →
// its functions in catalog order.
func Bundles() map[string][]function.Spec {
	return Group(All())
}

// Group groups specs by BundleOf, keeping their order within each bundle.
func Group(specs []function.Spec) map[string][]function.Spec {
	out := make(map[string][]function.Spec)
	for _, s := range specs {
		b := BundleOf(s)
		out[b] = append(out[b], s)
	}
	return out
}

func clone(s function.Spec) function.Spec {
	s.Routes = slices.Clone(s.Routes)
	s.Consumes = slices.Clone(s.Consumes)
	s.Emits = slices.Clone(s.Emits)
	s.Replies = slices.Clone(s.Replies)
	s.Secrets = slices.Clone(s.Secrets)
	if s.Delivery != nil {
		d := *s.Delivery
		s.Delivery = &d
	}
	return s
}
