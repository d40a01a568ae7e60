package function

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/tracing"
)

// PingType is the type every Knative PingSource emits; PingTypeExtension is
// the extension the platform's PingSources set to the type the scheduled
// function consumes, which the runtime then delivers it as.
const (
	PingType          = "dev.knative.sources.ping"
	PingTypeExtension = "cloudphonetype"
)

// MaxEventBytes caps the body of one incoming event.
const MaxEventBytes = 1 << 20

// EventStatus maps a handler's error to the HTTP status the broker acts on:
// 200 for nil, 400/422 (permanent: dead-letter at once) for invalid input and
// business-rule refusals, 409/429 (retry with backoff) for "not yet", 503 for
// an unavailable dependency and 500 (retry) for anything else.
func EventStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	e := apierr.As(err)
	if e == nil {
		return http.StatusInternalServerError
	}
	switch e.Code {
	case apierr.Invalid, apierr.TooLarge, apierr.UnsupportedMediaType:
		return http.StatusBadRequest
	case apierr.Unprocessable, apierr.NotFound, apierr.Forbidden, apierr.Unauthorized,
		apierr.InsufficientFunds, apierr.QuotaExceeded:
		return http.StatusUnprocessableEntity
	case apierr.Conflict:
		return http.StatusConflict
	case apierr.RateLimited:
		return http.StatusTooManyRequests
	case apierr.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Permanent marks err as never succeeding on retry (dead-letter at once).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return apierr.Wrap(apierr.Unprocessable, err, "%v", err)
}

// NotYet marks err as worth retrying later with backoff (out of order, busy).
func NotYet(err error) error {
	if err == nil {
		return nil
	}
	return apierr.Wrap(apierr.Conflict, err, "%v", err)
}

// EventHandler adapts an EventFunction to HTTP: it decodes binary or
// structured CloudEvents, wraps a plain POST into an event of the function's
// first consumed type, refuses types the function does not consume, carries
// the event in the context (events.WithCause) and writes the reply.
type EventHandler struct {
	Spec    Spec
	Fn      EventFunction
	Log     *slog.Logger
	Metrics *metrics.Metrics // optional
	// Auth, when set, admits only events from its senders with a valid
	// token for this function (or handed over in-process): anything else is
	// refused with 401 or 403 before it is decoded, and counted. Every
	// host sets it; only unit tests of the decoding leave it nil.
	Auth *eventauth.Receiver
}

func (h *EventHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		apierr.Write(w, r, h.Log, apierr.New(apierr.MethodNotAllowed, "events are delivered with POST"))
		return
	}
	if h.Auth != nil {
		if _, err := h.Auth.Admit(r, h.Spec.Name); err != nil {
			reason := "unauthenticated"
			if apierr.CodeOf(err) == apierr.Forbidden {
				reason = "forbidden"
			}
			if h.Metrics != nil {
				h.Metrics.EventsRefused.WithLabelValues(h.Spec.Name, reason).Inc()
			}
			h.Log.WarnContext(r.Context(), "event refused: sender not admitted", "remote", r.RemoteAddr, "err", err)
			apierr.Write(w, r, h.Log, err)
			return
		}
	}
	e, err := h.decode(r)
	if err != nil {
		h.count("?", "rejected")
		h.Log.WarnContext(r.Context(), "event refused", "err", err)
		apierr.Write(w, r, h.Log, err)
		return
	}
	ctx, span := tracing.StartEvent(tracing.Extract(r.Context(), r.Header), *e, "handle "+e.Type(), trace.SpanKindConsumer,
		attribute.String("faas.name", h.Spec.Name))
	ctx = events.WithCause(ctx, *e)
	start := time.Now()
	reply, err := h.call(ctx, *e)
	status := EventStatus(err)
	if span.IsRecording() {
		tracing.EndStatus(span, status, fmt.Sprint(err))
	}
	log := h.Log.With("event_id", e.ID(), "event_type", e.Type())
	switch {
	case err == nil:
		h.count(e.Type(), "ack")
		log.DebugContext(ctx, "event handled", "took_ms", time.Since(start).Milliseconds())
	case status >= 500:
		h.count(e.Type(), "retry")
		log.ErrorContext(ctx, "event failed, will be retried", "status", status, "err", err)
	case status == http.StatusConflict || status == http.StatusTooManyRequests:
		h.count(e.Type(), "later")
		log.InfoContext(ctx, "event not handled yet, will be retried", "status", status, "err", err)
	default:
		h.count(e.Type(), "permanent")
		log.WarnContext(ctx, "event refused permanently", "status", status, "err", err)
	}
	if err != nil {
		writeEventError(w, status, err)
		return
	}
	if reply == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	events.Link(ctx, reply)
	if err := reply.Validate(); err != nil {
		log.ErrorContext(ctx, "handler returned an invalid reply", "err", err)
		writeEventError(w, http.StatusInternalServerError, err)
		return
	}
	if err := cehttp.WriteResponseWriter(ctx, binding.ToMessage(reply), http.StatusOK, w); err != nil {
		log.ErrorContext(ctx, "write reply", "err", err)
	}
}

func (h *EventHandler) call(ctx context.Context, e event.Event) (reply *event.Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h.Fn.Handle(ctx, e)
}

func (h *EventHandler) count(typ, outcome string) {
	if h.Metrics != nil {
		h.Metrics.Deliveries.WithLabelValues(h.Spec.Name, typ, outcome).Inc()
	}
}

func writeEventError(w http.ResponseWriter, status int, err error) {
	code := apierr.CodeOf(err)
	msg := "event not handled"
	if e := apierr.As(err); e != nil && code != apierr.Internal {
		msg = e.Message
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`+"\n", code, msg)
}

// decode reads the request as a CloudEvent, or wraps a plain POST into one.
func (h *EventHandler) decode(r *http.Request) (*event.Event, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxEventBytes+1))
	if err != nil {
		return nil, apierr.Wrap(apierr.Invalid, err, "reading the body failed")
	}
	if len(body) > MaxEventBytes {
		return nil, apierr.New(apierr.TooLarge, "event body is over %d bytes", MaxEventBytes)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var e *event.Event
	if isCloudEvent(r) {
		e, err = binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
		if err != nil {
			return nil, apierr.Wrap(apierr.Invalid, err, "malformed CloudEvent: %v", err)
		}
	} else {
		e, err = h.wrapPlain(r, body)
		if err != nil {
			return nil, err
		}
	}
	if err := e.Validate(); err != nil {
		return nil, apierr.Wrap(apierr.Invalid, err, "invalid CloudEvent: %v", err)
	}
	if e.Type() == PingType {
		// A PingSource cannot set the type; it names it in an extension.
		if t, ok := e.Extensions()[PingTypeExtension].(string); ok && t != "" {
			e.SetType(t)
		}
	}
	if len(h.Spec.Consumes) > 0 && !slices.Contains(h.Spec.Consumes, e.Type()) {
		return nil, apierr.New(apierr.Invalid, "event type %q is not handled by %s", e.Type(), h.Spec.Name)
	}
	return e, nil
}

func isCloudEvent(r *http.Request) bool {
	if r.Header.Get("Ce-Specversion") != "" {
		return true
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return strings.HasPrefix(mt, "application/cloudevents")
}

// wrapPlain turns a plain POST (an OpenFaaS cron-connector call, a webhook)
// into an event of the function's first consumed type.
func (h *EventHandler) wrapPlain(r *http.Request, body []byte) (*event.Event, error) {
	if len(h.Spec.Consumes) == 0 {
		return nil, apierr.New(apierr.Invalid, "%s takes CloudEvents only", h.Spec.Name)
	}
	e := event.New()
	id := r.Header.Get("X-Call-Id")
	if id == "" {
		id = events.NewID()
	}
	e.SetID(id)
	e.SetType(h.Spec.Consumes[0])
	e.SetSource("/cloudphone/http/" + h.Spec.Name)
	e.SetTime(time.Now().UTC())
	if len(body) > 0 {
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		if err := e.SetData(ct, body); err != nil {
			return nil, apierr.Wrap(apierr.Invalid, err, "unusable body")
		}
	}
	return &e, nil
}

//
