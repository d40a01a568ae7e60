package broker

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/eventauth"
)

// MaxEventBytes caps the body of one event POSTed to the ingress.
const MaxEventBytes = 1 << 20

// ServeHTTP is the broker's ingress, the local stand-in for Knative's
// broker-ingress URL: it accepts a binary or structured CloudEvent POST and
// answers 202 once Send delivered or stored it. The request must carry a sender token for
// the broker (Authorization: Bearer, see eventauth): without a valid one it
// answers 401 unauthorized, and 403 forbidden when the policy does not let
// that sender send the event's type; either is counted and stores nothing.
// It answers 400 invalid for a request that
// is not a valid CloudEvent, 413 too_large for a body over MaxEventBytes, and
// 503 unavailable when the database refuses (the sender should retry).
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		apierr.Write(w, r, b.log, apierr.New(apierr.Invalid, "events are sent with POST"))
		return
	}
	if b.verifier == nil {
		b.refused("unauthenticated")
		apierr.Write(w, r, b.log, apierr.New(apierr.Unauthorized, "this broker has no key to check event senders with"))
		return
	}
	sender, err := b.verifier.FromRequest(r, eventauth.BrokerAudience)
	if err != nil {
		b.refused("unauthenticated")
		b.log.WarnContext(r.Context(), "event without a valid sender token refused", "remote", r.RemoteAddr, "err", err)
		apierr.Write(w, r, b.log, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxEventBytes+1))
	if err != nil {
		apierr.Write(w, r, b.log, apierr.Wrap(apierr.Invalid, err, "reading the body failed"))
		return
	}
	if len(body) > MaxEventBytes {
		apierr.Write(w, r, b.log, apierr.New(apierr.TooLarge, "event body is over %d bytes", MaxEventBytes))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	e, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
	if err != nil {
		msg := "malformed CloudEvent: " + err.Error()
		if errors.Is(err, binding.ErrUnknownEncoding) {
			msg = "not a CloudEvent: send ce-* headers (binary mode) or Content-Type application/cloudevents+json"
		}
		apierr.Write(w, r, b.log, apierr.Wrap(apierr.Invalid, err, "%s", msg))
		return
	}
	if err := b.Send(eventauth.WithSender(r.Context(), sender), *e); err != nil {
		apierr.Write(w, r, b.log, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
