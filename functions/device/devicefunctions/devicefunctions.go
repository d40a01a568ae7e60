// Package devicefunctions lists the device context's functions (device-runtime
// among them) and the event types it produces: the one place the context
// declares what it deploys. The catalog concatenates every context's lists.
package devicefunctions

import (
	"github.com/cloudphone/cloudphone/functions/device/adminnodes"
	"github.com/cloudphone/cloudphone/functions/device/deviceadbapi"
	"github.com/cloudphone/cloudphone/functions/device/deviceadbgateway"
	"github.com/cloudphone/cloudphone/functions/device/devicebalancestop"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceidlestop"
	"github.com/cloudphone/cloudphone/functions/device/deviceoutboxredrive"
	"github.com/cloudphone/cloudphone/functions/device/devicequotastop"
	"github.com/cloudphone/cloudphone/functions/device/devicereports"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/functions/device/devices"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Entries are the functions of the device context (cloud phones), in catalog
// order; device-runtime, the long-running owner of the phone containers,
// comes last.
var Entries = []function.Entry{
	devices.Entry,
	deviceadbgateway.Entry,
	deviceadbapi.Entry,
	adminnodes.Entry,
	devicereports.Entry,
	devicebalancestop.Entry,
	devicequotastop.Entry,
	deviceidlestop.Entry,
	deviceoutboxredrive.Entry,
	deviceruntime.Entry,
}

// Events are the event types of the device context: the commands to
// device-runtime, its reports, and the facts the context publishes.
var Events = []function.EventType{
	{Type: deviceevents.EventCreateRequested, Payload: deviceevents.Command{}, Doc: "command to device-runtime: create and start the device's container; subject is the device id"},
	{Type: deviceevents.EventStartRequested, Payload: deviceevents.Command{}, Doc: "command to device-runtime: start the device's container; subject is the device id"},
	{Type: deviceevents.EventStopRequested, Payload: deviceevents.Command{}, Doc: "command to device-runtime: stop the device's container (reason); subject is the device id"},
	{Type: deviceevents.EventRestartRequested, Payload: deviceevents.Command{}, Doc: "command to device-runtime: restart the device's container; subject is the device id"},
	{Type: deviceevents.EventDeleteRequested, Payload: deviceevents.Command{}, Doc: "command to device-runtime: remove the device's container; subject is the device id"},
	deviceReport(deviceevents.EventRuntimeCreated, "device-runtime made the device's container"),
	deviceReport(deviceevents.EventRuntimeStarted, "device-runtime saw the device's container running (at)"),
	deviceReport(deviceevents.EventRuntimeStopped, "device-runtime saw the device's container stopped"),
	deviceReport(deviceevents.EventRuntimeRestarted, "device-runtime restarted the device's container"),
	deviceReport(deviceevents.EventRuntimeRemoved, "device-runtime removed the device's container"),
	deviceReport(deviceevents.EventRuntimeFailed, "device-runtime could not carry out a command (op, reason)"),
	deviceReport(deviceevents.EventRuntimeCrashed, "the device's container died or vanished behind the platform's back"),
	{Type: deviceevents.EventRunning, Payload: deviceevents.Running{}, Doc: "a device's billed running interval began (at); subject is the device id"},
	{Type: deviceevents.EventStopped, Payload: deviceevents.Stopped{}, Doc: "a device's running interval ended by a stop (at, reason); subject is the device id"},
	{Type: deviceevents.EventError, Payload: deviceevents.Failed{}, Doc: "a device failed (at, reason), ending its running interval if one was open; subject is the device id"},
	{Type: deviceevents.EventDeleted, Payload: deviceevents.Deleted{}, Doc: "a device was deleted and its port and quota freed; subject is the device id"},
	{Type: deviceevents.EventConnectionOpened, Payload: deviceevents.ConnectionFact{}, Doc: "a user's ADB session with a device opened at the gateway (session_id, at); subject is the device id"},
	{Type: deviceevents.EventConnectionClosed, Payload: deviceevents.ConnectionFact{}, Doc: "a user's ADB session with a device closed (session_id, at, reason, bytes); subject is the device id"},
	{Type: deviceevents.EventAppInstallRequested, Payload: deviceevents.AppCommand{}, Doc: "command to device-runtime: download an app (presigned url, sha256, size) and install it on the device; subject is the device id"},
	{Type: deviceevents.EventAppUninstallRequested, Payload: deviceevents.AppCommand{}, Doc: "command to device-runtime: uninstall a package from the device; subject is the device id"},
	{Type: deviceevents.EventAppInstalled, Payload: deviceevents.AppFact{}, Doc: "an app was installed on a device and its package is listed (app_id, package, version_code, at); subject is the device id"},
	{Type: deviceevents.EventAppInstallFailed, Payload: deviceevents.AppFact{}, Doc: "an app could not be installed on a device (reason, e.g. digest_mismatch); subject is the device id"},
	{Type: deviceevents.EventAppUninstalled, Payload: deviceevents.AppFact{}, Doc: "an app was removed from a device; subject is the device id"},
	{Type: deviceevents.EventIdleCheckRequested, Payload: events.Tick{}, Doc: "time to stop the devices idle beyond their user's limit"},
	{Type: deviceevents.EventOutboxRedriveRequested, Payload: events.Tick{}, Doc: "time to re-drive the device context's parked outbox rows"},
}

// deviceReport is the event type of a device-runtime report.
func deviceReport(typ, doc string) function.EventType {
	return function.EventType{Type: typ, Payload: deviceevents.RuntimeReport{}, Doc: doc + "; subject is the device id"}
}
