package catalog

import (
	"github.com/cloudphone/cloudphone/functions/console"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// ContextConsole groups the web console, which owns no data: its pages call
// the other contexts' public API from the browser.
const ContextConsole = "console"

// consoleSpecs is the web console.
var consoleSpecs = []runtime.Spec{
	{
		Name: console.Name, Context: ContextConsole, Kind: runtime.KindHTTP,
		Routes:   console.Routes,
		MaxScale: 5, Concurrency: 200, TimeoutSeconds: 30,
	},
}
