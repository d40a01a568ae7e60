// Package billingpaymentwebhook is the billing-payment-webhook function: the payment
// provider's signed top-up notifications.
package billingpaymentwebhook

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

// Name is the function's name in the catalog.
const Name = "billing-payment-webhook"

// Route is the function's route.
const Route = "POST /api/v1/payments/webhook"

// Function answers Route: it checks webhooksig.Header against the raw
// body (401 unauthorized when missing, wrong or outside the tolerance; the
// refusal is logged with its reason, never with the secret or a signature),
// then applies the event with billing.Service.TopUp: 200 {status: credited |
// duplicate | ignored}. Safe for concurrent use.
type Function struct {
	svc *billing.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *billing.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("paymentwebhook: New needs a billing.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	auth.Route(auth.Access{Public: true}, f.log, f.handle).ServeHTTP(w, r)
}

func (f *Function) handle(ctx context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, httpjson.MaxBody+1))
	if err != nil {
		return 0, nil, apierr.Wrap(apierr.Invalid, err, "reading the body failed")
	}
	if len(body) > httpjson.MaxBody {
		return 0, nil, apierr.New(apierr.TooLarge, "request body is larger than %d bytes", httpjson.MaxBody)
	}
	if err := f.svc.VerifySignature(r.Header.Get(webhooksig.Header), body); err != nil {
		f.log.WarnContext(ctx, "payment webhook refused", "reason", apierr.As(err).Cause.Error(), "remote_addr", r.RemoteAddr,
			"body_bytes", len(body))
		return 0, nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var ev billing.WebhookEvent
	if err := httpjson.Decode(r, &ev); err != nil {
		return 0, nil, err
	}
	res, err := f.svc.TopUp(ctx, ev)
	return http.StatusOK, res, err
}
