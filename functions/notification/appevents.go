package notification

import "time"

// The device context's facts about apps on phones (data AppFact, subject the
// device id), reported by device-runtime after an install or uninstall.
const (
	EventAppInstalled     = "cloudphone.app.installed"
	EventAppInstallFailed = "cloudphone.app.install_failed"
	EventAppUninstalled   = "cloudphone.app.uninstalled"
)

// AppFact is the data of the app facts (schema version 1) as the
// notification context reads them (it does not import the producer). Reason is set on install_failed only.
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
