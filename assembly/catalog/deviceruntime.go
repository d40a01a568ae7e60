package catalog

import (
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/shared/function"
)

// deviceRuntimeSpecs is device-runtime, the long-running part of the device
// context: it turns the device commands into phone containers on the device
// hosts' Docker engines and reports every outcome. One instance, never scaled
// to zero: it keeps its own queue, a Docker events watch and a reconcile
// loop. Its command and report types are catalogued with the device
// context's events (deviceEvents).
var deviceRuntimeSpecs = []function.Spec{
	{
		Name: deviceruntime.Name, Context: ContextDevice, Kind: function.KindEvent,
		Consumes: deviceruntime.Consumes,
		Emits:    deviceruntime.Emits,
		MinScale: 1, MaxScale: 1, Concurrency: 100, TimeoutSeconds: 30,
	},
}
