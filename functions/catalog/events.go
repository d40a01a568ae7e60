package catalog

import "slices"

// EventType is one entry of the event catalog: a CloudEvents type and the
// struct its data decodes into. Who produces and who consumes it is derived
// from the function specs (Producers, Consumers), so it cannot drift.
type EventType struct {
	Type    string
	Payload any // the zero value of the data's struct
	Doc     string
	// Producer names the context that produces Type while none of the
	// catalog's functions does yet (a command whose sender is still to be
	// built). It must be empty once a catalogued function produces Type.
	Producer string
}

// eventTypes is every event type, context by context.
var eventTypes = slices.Concat(userEvents, billingEvents, deviceEvents, notificationEvents)

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
	for _, s := range specs {
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
	for _, s := range specs {
		if slices.Contains(s.Consumes, typ) {
			out = append(out, s.Name)
		}
	}
	return out
}
