package catalog

import "github.com/cloudphone/cloudphone/shared/function"

// schedulerSpecs are the functions of the scheduler context.
var schedulerSpecs = []function.Spec{
	{
		Name: DeadLetter, Context: ContextScheduler, Kind: function.KindEvent,
		MaxScale: 3, Concurrency: 50, TimeoutSeconds: 30,
	},
}
