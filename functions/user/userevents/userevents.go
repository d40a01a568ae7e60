// Package userevents is the user context's event contract: the types of the
// events it sends and receives and their payloads. Producers and consumers
// of these events, in any context, import it; it imports nothing of the user
// context.
package userevents

import (
	"fmt"
	"time"

	"github.com/cloudphone/cloudphone/shared/validate"
)

// EventRegistered announces a new account; its subject is the user id.
const EventRegistered = "cloudphone.user.registered"

// Registered is the data of EventRegistered (schema version 1).
type Registered struct {
	SchemaVersion int       `json:"schema_version"`
	UserID        string    `json:"user_id"`
	Username      string    `json:"username"`
	Email         string    `json:"email"`
	RegisteredAt  time.Time `json:"registered_at"`
}

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
// version 1). GrantID (the order id) makes it idempotent. Limits are the
// amounts granted (sent as fields of the object). ExpiresAt is for
// information only: a grant lasts until it is revoked.
type QuotaGrantRequested struct {
	SchemaVersion int        `json:"schema_version"`
	GrantID       string     `json:"grant_id"`
	UserID        string     `json:"user_id"`
	PlanID        string     `json:"plan_id"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Limits
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

// Limits are what a user may hold: totals over all devices and caps per device.
type Limits struct {
	MaxDevices        int `json:"max_devices"`
	MaxRunningDevices int `json:"max_running_devices"`
	MaxCPUCores       int `json:"max_cpu_cores"`
	MaxMemoryMB       int `json:"max_memory_mb"`
	MaxStorageGB      int `json:"max_storage_gb"`
	DeviceMaxCPUCores int `json:"device_max_cpu_cores"`
	DeviceMaxMemoryMB int `json:"device_max_memory_mb"`
	// IdleMinutes is how long a running device may go unused (no ADB
	// session, no API use) before the device context stops it.
	IdleMinutes int `json:"idle_minutes"`
}

// Plus returns l with grant added: counts and totals are summed, per-device
// caps are the larger of the two (a plan raises what one device may have, it
// does not add to it).
func (l Limits) Plus(grant Limits) Limits {
	return Limits{
		MaxDevices:        l.MaxDevices + grant.MaxDevices,
		MaxRunningDevices: l.MaxRunningDevices + grant.MaxRunningDevices,
		MaxCPUCores:       l.MaxCPUCores + grant.MaxCPUCores,
		MaxMemoryMB:       l.MaxMemoryMB + grant.MaxMemoryMB,
		MaxStorageGB:      l.MaxStorageGB + grant.MaxStorageGB,
		DeviceMaxCPUCores: max(l.DeviceMaxCPUCores, grant.DeviceMaxCPUCores),
		DeviceMaxMemoryMB: max(l.DeviceMaxMemoryMB, grant.DeviceMaxMemoryMB),
		IdleMinutes:       max(l.IdleMinutes, grant.IdleMinutes),
	}
}

// Bounds of every amount a grant carries, checked alike by whoever sends
// one (a plan's quota in billing) and by the user context receiving it.
const (
	// MaxAmount bounds each count, total and per-device cap.
	MaxAmount = 1 << 20
	// MaxIdleMinutes bounds IdleMinutes: one week.
	MaxIdleMinutes = 7 * 24 * 60
)

// Check records in p every amount of l outside its bounds (0 to MaxAmount,
// IdleMinutes 0 to MaxIdleMinutes), naming each field prefix + its JSON name.
func (l Limits) Check(prefix string, p *validate.Problems) {
	for name, v := range map[string]int{
		"max_devices": l.MaxDevices, "max_running_devices": l.MaxRunningDevices, "max_cpu_cores": l.MaxCPUCores,
		"max_memory_mb": l.MaxMemoryMB, "max_storage_gb": l.MaxStorageGB,
		"device_max_cpu_cores": l.DeviceMaxCPUCores, "device_max_memory_mb": l.DeviceMaxMemoryMB,
	} {
		p.Check(v >= 0 && v <= MaxAmount, prefix+name, fmt.Sprintf("must be 0 to %d", MaxAmount))
	}
	p.Check(l.IdleMinutes >= 0 && l.IdleMinutes <= MaxIdleMinutes, prefix+"idle_minutes", fmt.Sprintf("must be 0 to %d", MaxIdleMinutes))
}

// QuotaReply is what every reply to a quota command (EventQuotaGranted,
// EventQuotaGrantRefused, EventQuotaRevoked) carries, for a consumer that
// reads the three with one type; Reason and Message come with a refusal only.
type QuotaReply struct {
	GrantID string `json:"grant_id"`
	UserID  string `json:"user_id"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}
