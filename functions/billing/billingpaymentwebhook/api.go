package billingpaymentwebhook

import (
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Access: function.AccessSigned, Summary: "The payment provider reports a top-up",
		Doc:     "Signed in the Cloudphone-Signature header. A top-up is applied once: the same event id again answers 200 and changes nothing.",
		Request: billing.WebhookEvent{}, Response: billing.WebhookResult{}},
}
