package console

import (
	"context"

	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// ContextName is the console's own group: it belongs to no bounded context
// and owns no data.
const ContextName = "console"

// EntryOver declares the console beside the platform's other functions:
// their routes decide which parts of the console are shown (see Options).
func EntryOver(others []function.Entry) function.Entry {
	var routes []string
	for _, e := range others {
		routes = append(routes, e.Spec.Routes...)
	}
	return function.HTTPEntry(function.Spec{
		Name: Name, Context: ContextName, Routes: Routes, API: API,
		MaxScale: 5, Concurrency: 200, TimeoutSeconds: 30,
	}, func(_ context.Context, r *process.Resources) (*Function, error) {
		return New(r.Log, Options{Routes: routes}), nil
	})
}
