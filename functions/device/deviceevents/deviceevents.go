// Package deviceevents is the device context's event contract: the types of
// the events it sends and receives (device-runtime's included) and their
// payloads. Producers and consumers of these events, in any context, import
// it; it imports nothing of the device context.
package deviceevents

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

// EventOutboxRedriveRequested asks device-outbox-redrive to put the device
// context's parked outbox rows back to pending (data events.Tick).
const EventOutboxRedriveRequested = "cloudphone.device.outbox.redrive.requested"

// EventIdleCheckRequested asks device-idle-stop to stop the devices idle
// beyond their limit (data events.Tick).
const EventIdleCheckRequested = "cloudphone.device.idle.check.requested"

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
// CPUCores may be a fraction of a core: the device context sends whole cores,
// device-runtime takes what the engine can limit a container to (tests give a
// phone 0.1 of a core).
type Command struct {
	SchemaVersion int     `json:"schema_version"`
	DeviceID      string  `json:"device_id"`
	UserID        string  `json:"user_id"`
	NodeID        string  `json:"node_id"`
	DockerHost    string  `json:"docker_host"`
	Image         string  `json:"image"`
	CPUCores      float64 `json:"cpu_cores"`
	MemoryMB      int     `json:"memory_mb"`
	StorageGB     int     `json:"storage_gb"`
	ADBPort       int     `json:"adb_port"`
	Name          string  `json:"name"`
	Op            string  `json:"op"`
	Seq           int64   `json:"seq"`
	Reason        string  `json:"reason,omitempty"`
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

// CommandType returns the type of the command to device-runtime that asks
// for op (OpCreate, OpStart, ...).
func CommandType(op string) string {
	return "cloudphone.device." + op + ".requested"
}

// Fact is what every fact of the device context billing meters (EventRunning,
// EventStopped, EventError, EventDeleted) carries, for a consumer that reads
// them with one type: CPUCores and MemoryMB come with EventRunning only,
// Reason with EventStopped and EventError.
type Fact struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	CPUCores      int       `json:"cpu_cores,omitempty"`
	MemoryMB      int       `json:"memory_mb,omitempty"`
	At            time.Time `json:"at"`
	Reason        string    `json:"reason,omitempty"`
}

// Commands of the device context to device-runtime about apps on a phone
// (data AppCommand; subject the device id), written to the outbox with the
// installation's state change.
const (
	EventAppInstallRequested   = "cloudphone.device.app.install.requested"
	EventAppUninstallRequested = "cloudphone.device.app.uninstall.requested"
)

// Facts of device-runtime about apps on a phone (data AppFact; subject the
// device id). The device context turns them into the installation's state;
// the notification context tells the user.
const (
	EventAppInstalled     = "cloudphone.app.installed"
	EventAppInstallFailed = "cloudphone.app.install_failed"
	EventAppUninstalled   = "cloudphone.app.uninstalled"
)

// AppFacts lists the app facts device-runtime emits.
var AppFacts = []string{EventAppInstalled, EventAppInstallFailed, EventAppUninstalled}

// Reasons of EventAppInstallFailed. A refusal by the phone's package manager
// carries the package manager's own code instead (such as
// INSTALL_PARSE_FAILED_NO_CERTIFICATES).
const (
	// AppReasonDigestMismatch: the downloaded bytes are not the uploaded
	// ones (another size or another SHA-256).
	AppReasonDigestMismatch = "digest_mismatch"
	// AppReasonDownloadFailed: the APK could not be fetched from storage
	// (the URL expired, the object is gone, storage kept failing).
	AppReasonDownloadFailed = "download_failed"
	// AppReasonDeviceNotRunning: the phone was not running when the
	// command's turn came.
	AppReasonDeviceNotRunning = "device_not_running"
	// AppReasonNotListed: the package manager accepted the APK but does not
	// list its package afterwards.
	AppReasonNotListed = "not_listed"
	// AppReasonADBFailed: the phone's ADB kept failing.
	AppReasonADBFailed = "adb_failed"
)

// AppCommand is the data of EventAppInstallRequested and
// EventAppUninstallRequested (schema version 1). An install carries where to
// fetch the APK (URL, a presigned GET valid 15 minutes) and how to check it
// (SHA256, hex, and Size in bytes); an uninstall only names the package.
// DockerHost and ADBPort say where the phone is.
type AppCommand struct {
	SchemaVersion int    `json:"schema_version"`
	DeviceID      string `json:"device_id"`
	UserID        string `json:"user_id"`
	NodeID        string `json:"node_id"`
	DockerHost    string `json:"docker_host"`
	ADBPort       int    `json:"adb_port"`
	AppID         string `json:"app_id"`
	Package       string `json:"package"`
	VersionCode   int64  `json:"version_code"`
	URL           string `json:"url,omitempty"`
	SHA256        string `json:"sha256,omitempty"`
	Size          int64  `json:"size,omitempty"`
}

// AppFact is the data of EventAppInstalled, EventAppInstallFailed and
// EventAppUninstalled (schema version 1). Reason is set on install_failed
// only; At is when device-runtime saw the outcome.
type AppFact struct {
	SchemaVersion int       `json:"schema_version"`
	DeviceID      string    `json:"device_id"`
	UserID        string    `json:"user_id"`
	AppID         string    `json:"app_id"`
	Package       string    `json:"package"`
	VersionCode   int64     `json:"version_code"`
	Reason        string    `json:"reason,omitempty"`
	At            time.Time `json:"at"`
}
