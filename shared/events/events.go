// Package events builds and sends the platform's CloudEvents. It carries the
// event being handled in the context so that every event created while handling
// it gets the same correlationid and a causationid pointing at it; the function
// runtime puts the event there, handlers never copy the extensions themselves.
package events

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/tracing"
)

// Extension names (CloudEvents extension attributes).
const (
	ExtCorrelation = "correlationid"
	ExtCausation   = "causationid"
)

// MaxDataBytes is the largest payload sent in an event: bigger blobs
// are stored and referenced.
const MaxDataBytes = 64 << 10

type causeKey struct{}

// WithCause returns ctx carrying e as the event being handled, and its
// correlation id for the logs.
func WithCause(ctx context.Context, e event.Event) context.Context {
	ctx = context.WithValue(ctx, causeKey{}, e)
	return logging.WithCorrelation(ctx, CorrelationOf(e))
}

// Cause returns the event being handled, if any.
func Cause(ctx context.Context) (event.Event, bool) {
	e, ok := ctx.Value(causeKey{}).(event.Event)
	return e, ok
}

// CorrelationOf returns e's correlationid, or its id when it starts a chain.
func CorrelationOf(e event.Event) string {
	if v, ok := e.Extensions()[ExtCorrelation]; ok {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return e.ID()
}

// NewID returns a random UUIDv4 string.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// New builds an event of type typ from source about subject with data encoded
// as JSON. correlationid comes from ctx (the event being handled, or the
// request's correlation id); causationid is the id of the event being handled.
func New(ctx context.Context, typ, source, subject string, data any) (event.Event, error) {
	e := event.New()
	e.SetID(NewID())
	e.SetType(typ)
	e.SetSource(source)
	if subject != "" {
		e.SetSubject(subject)
	}
	e.SetTime(time.Now().UTC())
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return e, fmt.Errorf("encode %s data: %w", typ, err)
		}
		if len(b) > MaxDataBytes {
			return e, fmt.Errorf("%s data is %d bytes, over the %d byte limit", typ, len(b), MaxDataBytes)
		}
		if err := e.SetData(event.ApplicationJSON, json.RawMessage(b)); err != nil {
			return e, err
		}
	}
	Link(ctx, &e)
	return e, e.Validate()
}

// Link sets e's correlationid, causationid and traceparent (the span in ctx,
// else the cause's) from ctx where e has none.
func Link(ctx context.Context, e *event.Event) {
	ext := e.Extensions()
	cause, hasCause := Cause(ctx)
	if _, ok := ext[ExtCorrelation]; !ok {
		switch {
		case hasCause:
			e.SetExtension(ExtCorrelation, CorrelationOf(cause))
		case logging.Correlation(ctx) != "":
			e.SetExtension(ExtCorrelation, logging.Correlation(ctx))
		}
	}
	if _, ok := ext[ExtCausation]; !ok && hasCause {
		e.SetExtension(ExtCausation, cause.ID())
	}
	if _, ok := ext[tracing.ExtTraceparent]; !ok && !tracing.Stamp(ctx, e) && hasCause {
		// No span here (tracing is off in this process): the cause's
		// trace context carries on, so the trace stays whole.
		for _, k := range []string{tracing.ExtTraceparent, tracing.ExtTracestate} {
			if v, ok := cause.Extensions()[k]; ok {
				e.SetExtension(k, v)
			}
		}
	}
}

// Sender delivers one event to the broker (or, locally, the embedded broker).
// A nil error means the broker accepted it durably.
type Sender interface {
	Send(ctx context.Context, e event.Event) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, e event.Event) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, e event.Event) error { return f(ctx, e) }

// BatchSender is a Sender that also accepts several events in one call, each
// accepted or refused on its own, in fewer round trips than one Send each
// (the local broker stores a batch in one statement). The outbox relay uses
// SendBatch when its sender has it.
type BatchSender interface {
	Sender
	// SendBatch returns one error per event of evs, in their order: nil for
	// each event the broker accepted durably.
	SendBatch(ctx context.Context, evs []event.Event) []error
}

// Tick is the data of every scheduled event (a PingSource's, the local
// platform's or a cron-connector's): the minute it was due.
type Tick struct {
	ScheduledAt time.Time `json:"scheduled_at"`
}
