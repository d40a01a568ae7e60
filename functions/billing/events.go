package billing

import (
	"context"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/events"
)

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

// Quota commands and replies of the user context (contract in the user
// context's catalog entries), as billing encodes and decodes them.
const (
	EventQuotaGrantRequested  = "cloudphone.user.quota.grant.requested"
	EventQuotaRevokeRequested = "cloudphone.user.quota.revoke.requested"
	EventQuotaGranted         = "cloudphone.user.quota.granted"
	EventQuotaGrantRefused    = "cloudphone.user.quota.grant.refused"
	EventQuotaRevoked         = "cloudphone.user.quota.revoked"
)

// Device facts billing meters (contract of the device context).
const (
	EventDeviceRunning = "cloudphone.device.running"
	EventDeviceStopped = "cloudphone.device.stopped"
	EventDeviceError   = "cloudphone.device.error"
	EventDeviceDeleted = "cloudphone.device.deleted"
)

// Sources of billing's events.
const (
	SourceOrders = "/cloudphone/billing/billing-orders"
	SourceSaga   = "/cloudphone/billing/billing-purchase-saga"
	SourceJobs   = "/cloudphone/billing/billing-jobs"
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

// QuotaGrantRequested is the data of EventQuotaGrantRequested (schema
// version 1); GrantID is the order id.
type QuotaGrantRequested struct {
	SchemaVersion int        `json:"schema_version"`
	GrantID       string     `json:"grant_id"`
	UserID        string     `json:"user_id"`
	PlanID        string     `json:"plan_id"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Quota
}

// QuotaRevokeRequested is the data of EventQuotaRevokeRequested.
type QuotaRevokeRequested struct {
	SchemaVersion int    `json:"schema_version"`
	GrantID       string `json:"grant_id"`
	UserID        string `json:"user_id"`
}

// QuotaReply is the part of the user context's replies (granted,
// grant.refused, revoked) that billing reads.
type QuotaReply struct {
	GrantID string `json:"grant_id"`
	UserID  string `json:"user_id"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// DeviceFact is the data of the device facts billing meters; CPUCores and
// MemoryMB come with cloudphone.device.running only.
type DeviceFact struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	CPUCores      int       `json:"cpu_cores,omitempty"`
	MemoryMB      int       `json:"memory_mb,omitempty"`
	At            time.Time `json:"at"`
	Reason        string    `json:"reason,omitempty"`
}

// newEvent builds an event whose correlationid is correlation (a saga's order
// id, say), whatever the event being handled carries; causationid still
// points at the event being handled.
func newEvent(ctx context.Context, typ, source, subject, correlation string, data any) (event.Event, error) {
	e, err := events.New(ctx, typ, source, subject, data)
	if err != nil {
		return e, err
	}
	if correlation != "" {
		e.SetExtension(events.ExtCorrelation, correlation)
	}
	return e, nil
}
