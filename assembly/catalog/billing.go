package catalog

import (
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingbalance"
	"github.com/cloudphone/cloudphone/functions/billing/billingjobs"
	"github.com/cloudphone/cloudphone/functions/billing/billingmetering"
	"github.com/cloudphone/cloudphone/functions/billing/billingorders"
	"github.com/cloudphone/cloudphone/functions/billing/billingpaymentwebhook"
	"github.com/cloudphone/cloudphone/functions/billing/billingplans"
	"github.com/cloudphone/cloudphone/functions/billing/billingpurchasesaga"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

// SecretPaymentWebhook is the payment provider's webhook signing secret.
const SecretPaymentWebhook = "payment-webhook-secret"

// billingSpecs are the functions of the billing context.
var billingSpecs = []function.Spec{
	{
		Name: billingplans.Name, Context: ContextBilling, Kind: function.KindHTTP,
		Routes:   billingplans.Routes,
		MaxScale: 5, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: billingbalance.Name, Context: ContextBilling, Kind: function.KindHTTP,
		Routes:   billingbalance.Routes,
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: billingpaymentwebhook.Name, Context: ContextBilling, Kind: function.KindHTTP,
		Routes:   []string{billingpaymentwebhook.Route},
		MaxScale: 5, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: billingorders.Name, Context: ContextBilling, Kind: function.KindHTTP,
		Routes:   billingorders.Routes,
		Emits:    []string{billing.EventDebitRequested},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: billingpurchasesaga.Name, Context: ContextBilling, Kind: function.KindEvent,
		Consumes: billingpurchasesaga.Consumes,
		Emits:    billingpurchasesaga.Emits,
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: billingmetering.Name, Context: ContextBilling, Kind: function.KindEvent,
		Consumes: billingmetering.Consumes,
		MaxScale: 5, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: billingjobs.Name, Context: ContextBilling, Kind: function.KindEvent,
		Consumes: billingjobs.Consumes,
		Emits:    billingjobs.Emits,
		Schedule: billingjobs.Schedule,
		MaxScale: 1, Concurrency: 1, TimeoutSeconds: 120,
	},
}

// sagaDelivery retries a saga step 3 times, waiting 1 s, 2 s and 4 s (the
// broker waits BackoffDelay × 2^n before retry n ≥ 1).
var sagaDelivery = &Delivery{Retry: 3, BackoffDelay: 500 * time.Millisecond}

var billingDeployments = map[string]Deployment{
	billingplans.Name:          {Secrets: []string{SecretUserTokenPublicKey}},
	billingbalance.Name:        {Secrets: []string{SecretUserTokenPublicKey}},
	billingpaymentwebhook.Name: {Secrets: []string{SecretUserTokenPublicKey, SecretPaymentWebhook}},
	billingorders.Name:         {Secrets: []string{SecretUserTokenPublicKey}},
	billingpurchasesaga.Name:   {Secrets: []string{SecretUserTokenPublicKey}, Delivery: sagaDelivery},
	billingmetering.Name:       {Secrets: []string{SecretUserTokenPublicKey}},
	billingjobs.Name:           {Secrets: []string{SecretUserTokenPublicKey}, Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second}},
}

var billingEvents = []EventType{
	{Type: billing.EventDebitRequested, Payload: billing.DebitRequested{},
		Doc: "purchase saga command: debit the order's price; subject and correlationid are the order id"},
	{Type: billing.EventOrderActivated, Payload: billing.OrderActivatedData{},
		Doc: "an order's plan is active (subscription created or extended); subject is the order id"},
	{Type: billing.EventOrderFailed, Payload: billing.OrderFailedData{},
		Doc: "an order failed (reason insufficient_funds, grant_refused or timeout), compensations issued; subject is the order id"},
	{Type: billing.EventBalanceLow, Payload: billing.BalanceLow{},
		Doc: "a balance covers less than a day of current usage (at most once a day); subject is the user id"},
	{Type: billing.EventBalanceExhausted, Payload: billing.BalanceExhausted{},
		Doc: "a balance could not cover the usage charged (once per exhaustion); the device context stops the user's devices"},
	{Type: billing.EventSweepRequested, Payload: events.Tick{},
		Doc: "every minute: sweep overdue purchase sagas; run subscription expiry, usage charging and outbox re-drive when due"},
	{Type: billing.EventExpiryRequested, Payload: events.Tick{}, Producer: ContextBilling,
		Doc: "run the subscription expiry job now (sent on demand by an operator or a test; the minute tick runs it every 5 minutes)"},
	{Type: billing.EventChargeRequested, Payload: events.Tick{}, Producer: ContextBilling,
		Doc: "run the usage charging job now (sent on demand by an operator or a test; the minute tick runs it every 10 minutes)"},
}
