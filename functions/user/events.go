package user

import "time"

// Quota command and reply event types. Billing's purchase saga sends the two
// commands (subject: the grant id); user-quota-grants answers each with a
// reply the broker routes back. EventQuotaExceeded is a notification fact.
const (
	// EventQuotaGrantRequested asks to add a plan's quota to a user (data
	// QuotaGrantRequested). Answered with EventQuotaGranted or
	// EventQuotaGrantRefused.
	EventQuotaGrantRequested = "cloudphone.user.quota.grant.requested"
	// EventQuotaRevokeRequested asks to take a grant back (data
	// QuotaRevokeRequested). Always answered with EventQuotaRevoked.
	EventQuotaRevokeRequested = "cloudphone.user.quota.revoke.requested"
	// EventQuotaGranted says the grant is active (data QuotaGranted).
	EventQuotaGranted = "cloudphone.user.quota.granted"
	// EventQuotaGrantRefused says the grant will never apply (data
	// QuotaGrantRefused).
	EventQuotaGrantRefused = "cloudphone.user.quota.grant.refused"
	// EventQuotaRevoked says the grant is not (or no longer) active and never
	// will be (data QuotaRevoked).
	EventQuotaRevoked = "cloudphone.user.quota.revoked"
	// EventQuotaExceeded says a reservation or start was refused for lack of
	// quota (data QuotaExceeded; subject the user id).
	EventQuotaExceeded = "cloudphone.user.quota.exceeded"
	// EventOutboxRedriveRequested asks user-outbox-redrive to put the user
	// context's parked outbox rows back to pending (data events.Tick); its
	// PingSource sends it every five minutes.
	EventOutboxRedriveRequested = "cloudphone.user.outbox.redrive.requested"
)

// Sources of the quota events.
const (
	SourceQuotaGrants   = "/cloudphone/user/user-quota-grants"
	SourceQuotaInternal = "/cloudphone/user/user-quota-internal"
)

// Reasons of a QuotaGrantRefused.
const (
	// RefusedUnknownUser: no account has the grant's user id.
	RefusedUnknownUser = "unknown_user"
	// RefusedRevoked: the grant id was revoked, possibly before it arrived
	// (a compensation that overtook its step wins).
	RefusedRevoked = "revoked"
	// RefusedInvalid: the amounts are not valid.
	RefusedInvalid = "invalid"
	// RefusedOtherUser: the grant id is already used for another user.
	RefusedOtherUser = "grant_id_taken"
)

// QuotaGrantRequested is the data of EventQuotaGrantRequested (schema
// version 1). GrantID (the order id) makes it idempotent. ExpiresAt is for
// information only: a grant lasts until it is revoked.
type QuotaGrantRequested struct {
	SchemaVersion     int        `json:"schema_version"`
	GrantID           string     `json:"grant_id"`
	UserID            string     `json:"user_id"`
	PlanID            string     `json:"plan_id"`
	MaxDevices        int        `json:"max_devices"`
	MaxRunningDevices int        `json:"max_running_devices"`
	MaxCPUCores       int        `json:"max_cpu_cores"`
	MaxMemoryMB       int        `json:"max_memory_mb"`
	MaxStorageGB      int        `json:"max_storage_gb"`
	DeviceMaxCPUCores int        `json:"device_max_cpu_cores"`
	DeviceMaxMemoryMB int        `json:"device_max_memory_mb"`
	IdleMinutes       int        `json:"idle_minutes,omitempty"`
	ExpiresAt         *time.Time `json:"expires_at,omitempty"`
}

// Limits returns the amounts the request grants.
func (r QuotaGrantRequested) Limits() Limits {
	return Limits{
		MaxDevices: r.MaxDevices, MaxRunningDevices: r.MaxRunningDevices, MaxCPUCores: r.MaxCPUCores,
		MaxMemoryMB: r.MaxMemoryMB, MaxStorageGB: r.MaxStorageGB,
		DeviceMaxCPUCores: r.DeviceMaxCPUCores, DeviceMaxMemoryMB: r.DeviceMaxMemoryMB, IdleMinutes: r.IdleMinutes,
	}
}

// QuotaRevokeRequested is the data of EventQuotaRevokeRequested (schema
// version 1).
type QuotaRevokeRequested struct {
	SchemaVersion int    `json:"schema_version"`
	GrantID       string `json:"grant_id"`
	UserID        string `json:"user_id"`
}

// QuotaGranted is the data of EventQuotaGranted (schema version 1): the
// grant and the user's effective limits with it.
type QuotaGranted struct {
	SchemaVersion int       `json:"schema_version"`
	GrantID       string    `json:"grant_id"`
	UserID        string    `json:"user_id"`
	PlanID        string    `json:"plan_id"`
	Granted       Limits    `json:"granted"`
	Limits        Limits    `json:"limits"`
	GrantedAt     time.Time `json:"granted_at"`
}

// QuotaGrantRefused is the data of EventQuotaGrantRefused (schema version
// 1); Reason is one of the Refused* constants.
type QuotaGrantRefused struct {
	SchemaVersion int    `json:"schema_version"`
	GrantID       string `json:"grant_id"`
	UserID        string `json:"user_id"`
	Reason        string `json:"reason"`
	Message       string `json:"message"`
}

// QuotaRevoked is the data of EventQuotaRevoked (schema version 1). Limits
// are the user's effective limits after the revoke (zero when the user is
// unknown).
type QuotaRevoked struct {
	SchemaVersion int       `json:"schema_version"`
	GrantID       string    `json:"grant_id"`
	UserID        string    `json:"user_id"`
	Limits        Limits    `json:"limits"`
	RevokedAt     time.Time `json:"revoked_at"`
}

// QuotaExceeded is the data of EventQuotaExceeded (schema version 1): Limit
// names the limit (max_devices, device_max_cpu_cores, …), Requested is what
// the refused request would have needed of it, Allowed the limit's value.
type QuotaExceeded struct {
	SchemaVersion int    `json:"schema_version"`
	UserID        string `json:"user_id"`
	DeviceID      string `json:"device_id"`
	Limit         string `json:"limit"`
	Requested     int    `json:"requested"`
	Allowed       int    `json:"allowed"`
}
