package catalog

import (
	"slices"

	"github.com/cloudphone/cloudphone/shared/function"
)

// EventType is one entry of the event catalog (declared by the producing
// context's list).
type EventType = function.EventType

// Events returns every event type of the platform.
func Events() []EventType { return slices.Clone(eventTypes) }

// EventOf returns the catalog entry of typ.
func EventOf(typ string) (EventType, bool) {
	for _, e := range eventTypes {
		if e.Type == typ {
			return e, true
		}
	}
	return EventType{}, false
}

// Producers returns the functions that emit typ (through their outbox), reply
// with it, or are scheduled with it (their PingSource produces it).
func Producers(typ string) []string {
	var out []string
	for _, e := range entries {
		s := e.Spec
		if slices.Contains(s.Emits, typ) || slices.Contains(s.Replies, typ) ||
			(s.Schedule != "" && len(s.Consumes) > 0 && s.Consumes[0] == typ) {
			out = append(out, s.Name)
		}
	}
	return out
}

// Consumers returns the functions subscribed to typ.
func Consumers(typ string) []string {
	var out []string
	for _, e := range entries {
		s := e.Spec
		if slices.Contains(s.Consumes, typ) {
			out = append(out, s.Name)
		}
	}
	return out
}
