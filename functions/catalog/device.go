package catalog

import (
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/adbapi"
	"github.com/cloudphone/cloudphone/functions/device/adbgateway"
	"github.com/cloudphone/cloudphone/functions/device/adminnodes"
	"github.com/cloudphone/cloudphone/functions/device/devices"
	"github.com/cloudphone/cloudphone/functions/device/reports"
	"github.com/cloudphone/cloudphone/functions/device/userstop"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// deviceSecretServiceTokenKey signs the device context's service tokens
// (calls to the user context's quota API) and, unless
// CLOUDPHONE_DEVICE_TICKET_KEY is set, derives the connection-ticket key.
const deviceSecretServiceTokenKey = "service-token-key"

// deviceSpecs are the functions of the device context (cloud phones).
var deviceSpecs = []runtime.Spec{
	{
		Name: devices.Name, Context: ContextDevice, Kind: runtime.KindHTTP,
		Routes: devices.Routes,
		Emits: []string{device.EventCreateRequested, device.EventStartRequested, device.EventStopRequested,
			device.EventRestartRequested, device.EventDeleteRequested},
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		// Long-running: a session lasts as long as its user keeps it, and
		// the gateway watches the devices of its sessions.
		Name: adbgateway.Name, Context: ContextDevice, Kind: runtime.KindHTTP,
		Routes:   adbgateway.Routes,
		Emits:    adbgateway.Emits,
		MinScale: 1, MaxScale: 10, Concurrency: 1000, TimeoutSeconds: 600,
	},
	{
		Name: adbapi.Name, Context: ContextDevice, Kind: runtime.KindHTTP,
		Routes:   adbapi.Routes,
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 600,
	},
	{
		Name: adminnodes.Name, Context: ContextDevice, Kind: runtime.KindHTTP,
		Routes:   adminnodes.Routes,
		MaxScale: 3, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: reports.Name, Context: ContextDevice, Kind: runtime.KindEvent,
		Consumes: reports.Consumes,
		Emits:    reports.Emits,
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: userstop.BalanceName, Context: ContextDevice, Kind: runtime.KindEvent,
		Consumes: userstop.BalanceConsumes,
		Emits:    userstop.Emits,
		MaxScale: 3, Concurrency: 20, TimeoutSeconds: 30,
	},
	{
		Name: userstop.QuotaName, Context: ContextDevice, Kind: runtime.KindEvent,
		Consumes: userstop.QuotaConsumes,
		Emits:    userstop.Emits,
		MaxScale: 3, Concurrency: 20, TimeoutSeconds: 30,
	},
	{
		Name: "device-outbox-redrive", Context: ContextDevice, Kind: runtime.KindEvent,
		Consumes: []string{device.EventOutboxRedriveRequested},
		Schedule: "*/5 * * * *",
		MaxScale: 1, Concurrency: 1, TimeoutSeconds: 60,
	},
}

var deviceDeployments = map[string]Deployment{
	devices.Name:            {Secrets: []string{SecretUserTokenPublicKey, deviceSecretServiceTokenKey}},
	adbgateway.Name:         {Secrets: []string{SecretUserTokenPublicKey, deviceSecretServiceTokenKey}},
	adbapi.Name:             {Secrets: []string{SecretUserTokenPublicKey, deviceSecretServiceTokenKey}},
	adminnodes.Name:         {Secrets: []string{SecretUserTokenPublicKey, deviceSecretServiceTokenKey}},
	reports.Name:            {Secrets: []string{deviceSecretServiceTokenKey}},
	userstop.BalanceName:    {Secrets: []string{deviceSecretServiceTokenKey}},
	userstop.QuotaName:      {Secrets: []string{deviceSecretServiceTokenKey}},
	"device-outbox-redrive": {Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second}},
}

var deviceEvents = []EventType{
	{Type: device.EventCreateRequested, Payload: device.Command{}, Doc: "command to device-runtime: create and start the device's container; subject is the device id"},
	{Type: device.EventStartRequested, Payload: device.Command{}, Doc: "command to device-runtime: start the device's container; subject is the device id"},
	{Type: device.EventStopRequested, Payload: device.Command{}, Doc: "command to device-runtime: stop the device's container (reason); subject is the device id"},
	{Type: device.EventRestartRequested, Payload: device.Command{}, Doc: "command to device-runtime: restart the device's container; subject is the device id"},
	{Type: device.EventDeleteRequested, Payload: device.Command{}, Doc: "command to device-runtime: remove the device's container; subject is the device id"},
	deviceReport(device.EventRuntimeCreated, "device-runtime made the device's container"),
	deviceReport(device.EventRuntimeStarted, "device-runtime saw the device's container running (at)"),
	deviceReport(device.EventRuntimeStopped, "device-runtime saw the device's container stopped"),
	deviceReport(device.EventRuntimeRestarted, "device-runtime restarted the device's container"),
	deviceReport(device.EventRuntimeRemoved, "device-runtime removed the device's container"),
	deviceReport(device.EventRuntimeFailed, "device-runtime could not carry out a command (op, reason)"),
	deviceReport(device.EventRuntimeCrashed, "the device's container died or vanished behind the platform's back"),
	{Type: device.EventRunning, Payload: device.Running{}, Doc: "a device's billed running interval began (at); subject is the device id"},
	{Type: device.EventStopped, Payload: device.Stopped{}, Doc: "a device's running interval ended by a stop (at, reason); subject is the device id"},
	{Type: device.EventError, Payload: device.Failed{}, Doc: "a device failed (at, reason), ending its running interval if one was open; subject is the device id"},
	{Type: device.EventDeleted, Payload: device.Deleted{}, Doc: "a device was deleted and its port and quota freed; subject is the device id"},
	{Type: device.EventConnectionOpened, Payload: device.ConnectionFact{}, Doc: "a user's ADB session with a device opened at the gateway (session_id, at); subject is the device id"},
	{Type: device.EventConnectionClosed, Payload: device.ConnectionFact{}, Doc: "a user's ADB session with a device closed (session_id, at, reason, bytes); subject is the device id"},
	{Type: device.EventOutboxRedriveRequested, Payload: events.Tick{}, Doc: "time to re-drive the device context's parked outbox rows"},
}

// deviceReport is the catalog entry of a device-runtime report.
func deviceReport(typ, doc string) EventType {
	return EventType{Type: typ, Payload: device.RuntimeReport{}, Doc: doc + "; subject is the device id"}
}
