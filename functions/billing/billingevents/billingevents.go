// Package billingevents is the billing context's event contract: the types
// of the events it sends and their payloads. Producers and consumers of these
// events, in any context, import it; it imports nothing of the billing
// context.
package billingevents

import "time"

// Billing's own event types.
const (
	// EventDebitRequested is the purchase saga's first command (data
	// DebitRequested; subject and correlationid the order id): debit the
	// order's price. billing-orders writes it with the order.
	EventDebitRequested = "cloudphone.billing.order.debit.requested"
	// EventOrderActivated says an order's plan is active (data OrderActivated).
	EventOrderActivated = "cloudphone.billing.order.activated"
	// EventOrderFailed says an order ended failed, its compensations issued
	// (data OrderFailed).
	EventOrderFailed = "cloudphone.billing.order.failed"
	// EventBalanceLow says a balance covers less than a day of current usage
	// (data BalanceLow); at most once a day per user.
	EventBalanceLow = "cloudphone.billing.balance.low"
	// EventBalanceExhausted says a balance could not cover the usage charged
	// (data BalanceExhausted); once per exhaustion. The device context stops
	// that user's running devices.
	EventBalanceExhausted = "cloudphone.billing.balance.exhausted"
	// EventSweepRequested is the scheduled tick (every minute) of
	// billing-jobs: sweep overdue sagas, and run the other jobs when due.
	EventSweepRequested = "cloudphone.billing.saga.sweep.requested"
	// EventExpiryRequested runs the subscription expiry job now.
	EventExpiryRequested = "cloudphone.billing.subscription.expiry.requested"
	// EventChargeRequested runs the usage charging job now.
	EventChargeRequested = "cloudphone.billing.usage.charge.requested"
)

// DebitRequested is the data of EventDebitRequested (schema version 1).
type DebitRequested struct {
	SchemaVersion int    `json:"schema_version"`
	OrderID       string `json:"order_id"`
}

// OrderActivatedData is the data of EventOrderActivated (schema version 1).
type OrderActivatedData struct {
	SchemaVersion  int       `json:"schema_version"`
	OrderID        string    `json:"order_id"`
	UserID         string    `json:"user_id"`
	PlanID         string    `json:"plan_id"`
	SubscriptionID string    `json:"subscription_id"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// OrderFailedData is the data of EventOrderFailed (schema version 1); Reason is
// the failure code (insufficient_funds, grant_refused, timeout).
type OrderFailedData struct {
	SchemaVersion int    `json:"schema_version"`
	OrderID       string `json:"order_id"`
	UserID        string `json:"user_id"`
	PlanID        string `json:"plan_id"`
	Reason        string `json:"reason"`
	Message       string `json:"message"`
}

// BalanceLow is the data of EventBalanceLow (schema version 1).
type BalanceLow struct {
	SchemaVersion int    `json:"schema_version"`
	UserID        string `json:"user_id"`
	Balance       int64  `json:"balance"`
	Currency      string `json:"currency"`
	DailyUsage    int64  `json:"daily_usage"`
}

// BalanceExhausted is the data of EventBalanceExhausted (schema version 1):
// Unpaid is the usage the balance could not cover.
type BalanceExhausted struct {
	SchemaVersion int       `json:"schema_version"`
	UserID        string    `json:"user_id"`
	Balance       int64     `json:"balance"`
	Currency      string    `json:"currency"`
	Unpaid        int64     `json:"unpaid"`
	At            time.Time `json:"at"`
}
