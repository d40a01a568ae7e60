package catalog

import (
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/balance"
	"github.com/cloudphone/cloudphone/functions/billing/billingjobs"
	"github.com/cloudphone/cloudphone/functions/billing/metering"
	"github.com/cloudphone/cloudphone/functions/billing/orders"
	"github.com/cloudphone/cloudphone/functions/billing/paymentwebhook"
	"github.com/cloudphone/cloudphone/functions/billing/plans"
	"github.com/cloudphone/cloudphone/functions/billing/purchasesaga"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// SecretPaymentWebhook is the payment provider's webhook signing secret.
const SecretPaymentWebhook = "payment-webhook-secret"

// billingSpecs are the functions of the billing context.
var billingSpecs = []runtime.Spec{
	{
		Name: plans.Name, Context: ContextBilling, Kind: runtime.KindHTTP,
		Routes:   plans.Routes,
		MaxScale: 5, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: balance.Name, Context: ContextBilling, Kind: runtime.KindHTTP,
		Routes:   balance.Routes,
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: paymentwebhook.Name, Context: ContextBilling, Kind: runtime.KindHTTP,
		Routes:   []string{paymentwebhook.Route},
		MaxScale: 5, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: orders.Name, Context: ContextBilling, Kind: runtime.KindHTTP,
		Routes:   orders.Routes,
		Emits:    []string{billing.EventDebitRequested},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: purchasesaga.Name, Context: ContextBilling, Kind: runtime.KindEvent,
		Consumes: purchasesaga.Consumes,
		Emits:    purchasesaga.Emits,
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: metering.Name, Context: ContextBilling, Kind: runtime.KindEvent,
		Consumes: metering.Consumes,
		MaxScale: 5, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: billingjobs.Name, Context: ContextBilling, Kind: runtime.KindEvent,
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
	plans.Name:          {Secrets: []string{SecretUserTokenPublicKey}},
	balance.Name:        {Secrets: []string{SecretUserTokenPublicKey}},
	paymentwebhook.Name: {Secrets: []string{SecretUserTokenPublicKey, SecretPaymentWebhook}},
	orders.Name:         {Secrets: []string{SecretUserTokenPublicKey}},
	purchasesaga.Name:   {Secrets: []string{SecretUserTokenPublicKey}, Delivery: sagaDelivery},
	metering.Name:       {Secrets: []string{SecretUserTokenPublicKey}},
	billingjobs.Name:    {Secrets: []string{SecretUserTokenPublicKey}, Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second}},
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
