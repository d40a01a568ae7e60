// Package migrations holds device-runtime's tables (runtime_commands and
// runtime_devices, set "deviceruntime"), kept in the device context's
// database next to its outbox. It is a package of its own so that the device
// context's wiring can open that database with them without importing
// device-runtime.
package migrations

import (
	"embed"

	"github.com/cloudphone/cloudphone/shared/db"
)

//go:embed *.sql
var files embed.FS

// Set is device-runtime's migration set.
var Set = db.Embedded("deviceruntime", files, ".")
