// Package appevents is the app context's event contract: the types of the
// events it sends and their payloads. Consumers of these events, in any
// context, import it; it imports nothing of the app context.
package appevents

// The app context's facts.
const (
	// EventUploaded says a user uploaded an app (data Uploaded; subject the
	// app id).
	EventUploaded = "cloudphone.app.uploaded"
	// EventDeleted says a user deleted an app (data Deleted; subject the app
	// id). Installations of it on phones stay as they are.
	EventDeleted = "cloudphone.app.deleted"
)

// Uploaded is the data of EventUploaded.
type Uploaded struct {
	AppID       string `json:"app_id"`
	UserID      string `json:"user_id"`
	Package     string `json:"package"`
	VersionCode int64  `json:"version_code"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
}

// Deleted is the data of EventDeleted.
type Deleted struct {
	AppID       string `json:"app_id"`
	UserID      string `json:"user_id"`
	Package     string `json:"package"`
	VersionCode int64  `json:"version_code"`
}

// EventOutboxRedriveRequested asks app-outbox-redrive to put the app
// context's parked outbox rows back to pending; its PingSource sends it every
// five minutes.
const EventOutboxRedriveRequested = "cloudphone.app.outbox.redrive.requested"
