package catalog

import "github.com/cloudphone/cloudphone/shared/runtime"

// schedulerSpecs are the functions of the scheduler context.
var schedulerSpecs = []runtime.Spec{
	{
		Name: DeadLetter, Context: ContextScheduler, Kind: runtime.KindEvent,
		MaxScale: 3, Concurrency: 50, TimeoutSeconds: 30,
	},
}
