package device

import "time"

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
