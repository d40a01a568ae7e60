package function

import (
	"context"
	"fmt"
	"slices"

	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Builder makes a function once the process's resources can be used. It runs
// in the function's Start, so a function opens its pools lazily and functions
// of one process open theirs in parallel.
type Builder func(ctx context.Context, r *process.Resources) (any, error)

// Entry is a function declared once: its spec (what the catalog, the
// manifests and the hosts know of it) and its builder. Every function package
// exports one, made by HTTPEntry or EventEntry, and its context lists it.
type Entry struct {
	Spec  Spec
	Build Builder
}

// HTTPEntry declares an HTTP function: spec with Kind http, built by build.
// A builder that returns something other than an HTTPFunction does not
// compile.
func HTTPEntry[F HTTPFunction](spec Spec, build func(ctx context.Context, r *process.Resources) (F, error)) Entry {
	spec.Kind = KindHTTP
	return Entry{Spec: spec, Build: func(ctx context.Context, r *process.Resources) (any, error) {
		return build(ctx, r)
	}}
}

// EventEntry declares an event function: spec with Kind event, built by
// build. A builder that returns something other than an EventFunction does
// not compile.
func EventEntry[F EventFunction](spec Spec, build func(ctx context.Context, r *process.Resources) (F, error)) Entry {
	spec.Kind = KindEvent
	return Entry{Spec: spec, Build: func(ctx context.Context, r *process.Resources) (any, error) {
		return build(ctx, r)
	}}
}

// Check reports what is wrong with e on its own: a missing name, context or
// builder, an HTTP function without routes or with subscriptions, an event
// function with routes, a schedule without the event it is driven by.
func (e Entry) Check() error {
	s := e.Spec
	switch {
	case s.Name == "":
		return fmt.Errorf("function without a name")
	case s.Context == "":
		return fmt.Errorf("function %s: no context", s.Name)
	case e.Build == nil:
		return fmt.Errorf("function %s: no builder", s.Name)
	case s.Kind == KindHTTP && len(s.Routes) == 0:
		return fmt.Errorf("function %s: an HTTP function without routes", s.Name)
	case s.Kind == KindHTTP && len(s.Consumes) > 0:
		return fmt.Errorf("function %s: an HTTP function cannot consume events", s.Name)
	case s.Kind == KindEvent && len(s.Routes) > 0:
		return fmt.Errorf("function %s: an event function cannot serve routes", s.Name)
	case s.Kind != KindHTTP && s.Kind != KindEvent:
		return fmt.Errorf("function %s: kind %q", s.Name, s.Kind)
	case s.Schedule != "" && len(s.Consumes) == 0:
		return fmt.Errorf("function %s: a schedule without the event it sends", s.Name)
	}
	if err := s.checkAPI(); err != nil {
		return err
	}
	if i := slices.IndexFunc(s.Secrets, func(x string) bool { return x == "" }); i >= 0 {
		return fmt.Errorf("function %s: empty secret name", s.Name)
	}
	return nil
}

// EventType is one event type of the catalog: a CloudEvents type and the
// struct its data decodes into. Who produces and who consumes it is derived
// from the function specs, so it cannot drift. The producing context lists
// its types beside its entries.
type EventType struct {
	Type    string
	Payload any // the zero value of the data's struct
	Doc     string
	// Producer names the context that produces Type while none of the
	// catalog's functions does yet (a command whose sender is still to be
	// built). It must be empty once a catalogued function produces Type.
	Producer string
}

// EventPolicy returns who may send what, as the catalog declares it: each
// context the event types its functions emit or reply with (replies are
// checked against the replying function's context), and the schedules
// (eventauth.PingSource) the types the scheduled functions consume; the
// context of a function that Redrives dead letters, every consumed type.
func EventPolicy(specs []Spec) *eventauth.Policy {
	p := eventauth.NewPolicy(nil)
	for _, s := range specs {
		if !s.Redrives {
			continue
		}
		for _, c := range specs {
			for _, t := range c.Consumes {
				p.Allow(s.Context, t)
			}
		}
	}
	for _, s := range specs {
		p.Member(s.Name, s.Context)
		for _, t := range s.Emits {
			p.Allow(s.Context, t)
		}
		for _, t := range s.Replies {
			p.Allow(s.Context, t)
		}
		if s.Schedule != "" {
			// A scheduled function's types are requests to run its jobs:
			// its PingSource sends the first, an operator may ask for any.
			for _, t := range s.Consumes {
				p.Allow(eventauth.PingSource, t)
			}
			p.Allow(eventauth.PingSource, PingType)
		}
	}
	return p
}
