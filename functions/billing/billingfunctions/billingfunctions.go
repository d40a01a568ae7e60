// Package billingfunctions lists the billing context's functions and the
// event types it produces: the one place the context declares what it
// deploys. The catalog concatenates every context's lists.
package billingfunctions

import (
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingbalance"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/billing/billingfundsinternal"
	"github.com/cloudphone/cloudphone/functions/billing/billingjobs"
	"github.com/cloudphone/cloudphone/functions/billing/billingmetering"
	"github.com/cloudphone/cloudphone/functions/billing/billingorders"
	"github.com/cloudphone/cloudphone/functions/billing/billingpaymentwebhook"
	"github.com/cloudphone/cloudphone/functions/billing/billingplans"
	"github.com/cloudphone/cloudphone/functions/billing/billingpurchasesaga"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Entries are the functions of the billing context, in catalog order.
var Entries = []function.Entry{
	billingplans.Entry,
	billingbalance.Entry,
	billingfundsinternal.Entry,
	billingpaymentwebhook.Entry,
	billingorders.Entry,
	billingpurchasesaga.Entry,
	billingmetering.Entry,
	billingjobs.Entry,
}

// Events are the event types the billing context produces, with their
// payloads.
var Events = []function.EventType{
	{Type: billingevents.EventDebitRequested, Payload: billingevents.DebitRequested{},
		Doc: "purchase saga command: debit the order's price; subject and correlationid are the order id"},
	{Type: billingevents.EventOrderActivated, Payload: billingevents.OrderActivatedData{},
		Doc: "an order's plan is active (subscription created or extended); subject is the order id"},
	{Type: billingevents.EventOrderFailed, Payload: billingevents.OrderFailedData{},
		Doc: "an order failed (reason insufficient_funds, grant_refused or timeout), compensations issued; subject is the order id"},
	{Type: billingevents.EventBalanceLow, Payload: billingevents.BalanceLow{},
		Doc: "a balance covers less than a day of current usage (at most once a day); subject is the user id"},
	{Type: billingevents.EventBalanceExhausted, Payload: billingevents.BalanceExhausted{},
		Doc: "a balance could not cover the usage charged (once per exhaustion); the device context stops the user's devices"},
	{Type: billingevents.EventSweepRequested, Payload: events.Tick{},
		Doc: "every minute: sweep overdue purchase sagas; run subscription expiry, usage charging and outbox re-drive when due"},
	{Type: billingevents.EventExpiryRequested, Payload: events.Tick{}, Producer: billing.ContextName,
		Doc: "run the subscription expiry job now (sent on demand by an operator or a test; the minute tick runs it every 5 minutes)"},
	{Type: billingevents.EventChargeRequested, Payload: events.Tick{}, Producer: billing.ContextName,
		Doc: "run the usage charging job now (sent on demand by an operator or a test; the minute tick runs it every 10 minutes)"},
}
