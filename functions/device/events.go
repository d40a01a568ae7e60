package device

import "time"

// Commands to device-runtime (data Command; subject the device id). Each is
// written to the outbox with the state change that asks for it.
const (
	EventCreateRequested  = "cloudphone.device.create.requested"
	EventStartRequested   = "cloudphone.device.start.requested"
	EventStopRequested    = "cloudphone.device.stop.requested"
	EventRestartRequested = "cloudphone.device.restart.requested"
	EventDeleteRequested  = "cloudphone.device.delete.requested"
)

// Reports of device-runtime (data RuntimeReport; subject the device id),
// which the reports function turns into state.
const (
	EventRuntimeCreated   = "cloudphone.device.runtime.created"
	EventRuntimeStarted   = "cloudphone.device.runtime.started"
	EventRuntimeStopped   = "cloudphone.device.runtime.stopped"
	EventRuntimeRestarted = "cloudphone.device.runtime.restarted"
	EventRuntimeRemoved   = "cloudphone.device.runtime.removed"
	EventRuntimeFailed    = "cloudphone.device.runtime.failed"
	EventRuntimeCrashed   = "cloudphone.device.runtime.crashed"
)

// RuntimeReports lists every report type.
var RuntimeReports = []string{EventRuntimeCreated, EventRuntimeStarted, EventRuntimeStopped,
	EventRuntimeRestarted, EventRuntimeRemoved, EventRuntimeFailed, EventRuntimeCrashed}

// Facts of the device context (subject the device id), for billing's
// metering and for notifications. Per device, every EventRunning is followed
// by exactly one EventStopped or EventError before the next EventRunning
// (a deletion of a running device emits EventStopped with reason "deleted"
// before EventDeleted). EventError is also emitted for a device that never
// ran.
const (
	EventRunning = "cloudphone.device.running"
	EventStopped = "cloudphone.device.stopped"
	EventError   = "cloudphone.device.error"
	EventDeleted = "cloudphone.device.deleted"
)

// Facts of the ADB gateway (data ConnectionFact, subject the device id):
// a user's ADB session with a device opened, and closed. Every opened
// session is followed by one closed, unless the gateway's process dies
// first.
const (
	EventConnectionOpened = "cloudphone.device.connection.opened"
	EventConnectionClosed = "cloudphone.device.connection.closed"
)

// ConnectionFact is the data of EventConnectionOpened and
// EventConnectionClosed (schema version 1). At is when the session opened
// or closed; Reason, BytesIn (from the user) and BytesOut (to the user) are
// set on closed.
type ConnectionFact struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	SessionID     string    `json:"session_id"`
	At            time.Time `json:"at"`
	Reason        string    `json:"reason,omitempty"`
	BytesIn       int64     `json:"bytes_in,omitempty"`
	BytesOut      int64     `json:"bytes_out,omitempty"`
}

// Reasons an ADB session closes.
const (
	ConnectionClosedByClient  = "client_closed"
	ConnectionClosedByPhone   = "phone_closed"
	ConnectionDeviceStopped   = "device_stopped"
	ConnectionGatewayStopping = "gateway_stopping"
)

// EventBalanceExhausted is billing's fact that a user's balance cannot pay
// for more usage (data BalanceExhausted); the device context stops that
// user's running devices.
const EventBalanceExhausted = "cloudphone.billing.balance.exhausted"

// EventOutboxRedriveRequested asks device-outbox-redrive to put the device
// context's parked outbox rows back to pending (data events.Tick).
const EventOutboxRedriveRequested = "cloudphone.device.outbox.redrive.requested"

// EventIdleCheckRequested asks device-idle-stop to stop the devices idle
// beyond their limit (data events.Tick).
const EventIdleCheckRequested = "cloudphone.device.idle.check.requested"

// Sources of the events the context writes.
const (
	SourceDevices     = "/cloudphone/device/devices"
	SourceReports     = "/cloudphone/device/device-reports"
	SourceBalanceStop = "/cloudphone/device/device-balance-stop"
	SourceQuotaStop   = "/cloudphone/device/device-quota-stop"
	SourceADBGateway  = "/cloudphone/device/device-adb-gateway"
	SourceIdleStop    = "/cloudphone/device/device-idle-stop"
)

// Reasons a device stops or fails.
const (
	ReasonUser              = "user_request"
	ReasonInsufficientFunds = "insufficient_funds"
	ReasonQuotaReduced      = "quota_reduced"
	ReasonDeleted           = "deleted"
	ReasonExited            = "exited"
	ReasonCrashed           = "crashed"
	ReasonFailed            = "failed"
	ReasonQuotaExceeded     = "quota_exceeded"
	ReasonIdle              = "idle"
)

// Operations named by commands and echoed by reports.
const (
	OpCreate  = "create"
	OpStart   = "start"
	OpStop    = "stop"
	OpRestart = "restart"
	OpDelete  = "delete"
)

// Command is the data of every command to device-runtime (schema version 1).
// Every field is set for every op, so the runtime can recreate a missing
// container from any command. Seq grows with every command of the device;
// a report that echoes it lets the device context drop stale reports exactly.
type Command struct {
	SchemaVersion int    `json:"schema_version"`
	DeviceID      string `json:"device_id"`
	UserID        string `json:"user_id"`
	NodeID        string `json:"node_id"`
	DockerHost    string `json:"docker_host"`
	Image         string `json:"image"`
	CPUCores      int    `json:"cpu_cores"`
	MemoryMB      int    `json:"memory_mb"`
	StorageGB     int    `json:"storage_gb"`
	ADBPort       int    `json:"adb_port"`
	Name          string `json:"name"`
	Op            string `json:"op"`
	Seq           int64  `json:"seq"`
	Reason        string `json:"reason,omitempty"`
}

// RuntimeReport is the data of every device-runtime report (schema version
// 1). At is when the runtime saw the outcome; Op names the command a report
// answers (failed reports in particular); Seq, when set, is the Seq of that
// command.
type RuntimeReport struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	NodeID        string    `json:"node_id"`
	ContainerID   string    `json:"container_id"`
	At            time.Time `json:"at"`
	Op            string    `json:"op,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	ExitCode      *int      `json:"exit_code,omitempty"`
	Seq           int64     `json:"seq,omitempty"`
}

// Running is the data of EventRunning (schema version 1): At is when the
// runtime saw the container running, the start of a billed interval.
type Running struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	CPUCores      int       `json:"cpu_cores"`
	MemoryMB      int       `json:"memory_mb"`
	At            time.Time `json:"at"`
}

// Stopped is the data of EventStopped (schema version 1): At ends the billed
// interval.
type Stopped struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	At            time.Time `json:"at"`
	Reason        string    `json:"reason"`
}

// Failed is the data of EventError (schema version 1): At ends the billed
// interval, if one was open.
type Failed struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	At            time.Time `json:"at"`
	Reason        string    `json:"reason"`
}

// Deleted is the data of EventDeleted (schema version 1).
type Deleted struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	At            time.Time `json:"at"`
}

// BalanceExhausted is the data of EventBalanceExhausted as the device
// context reads it (schema version 1; money in minor units).
type BalanceExhausted struct {
	SchemaVersion int       `json:"schema_version"`
	UserID        string    `json:"user_id"`
	Balance       int64     `json:"balance"`
	Currency      string    `json:"currency"`
	At            time.Time `json:"at"`
}

// EventQuotaRevoked is the user context's fact that a plan's quota grant was
// revoked (its subscription expired, or a purchase was compensated); Limits
// are the user's limits after it. Devices running beyond them are stopped.
const EventQuotaRevoked = "cloudphone.user.quota.revoked"

// QuotaRevoked is the data of EventQuotaRevoked as the device context reads it.
type QuotaRevoked struct {
	SchemaVersion int    `json:"schema_version"`
	UserID        string `json:"user_id"`
	Limits        struct {
		MaxRunningDevices int `json:"max_running_devices"`
	} `json:"limits"`
}
