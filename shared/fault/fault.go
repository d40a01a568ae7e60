// Package fault is fault injection for crash tests. A process configured with
// CLOUDPHONE_FAULT=<point> dies the first time it passes that point, with exit
// status 137, as if it had been killed with SIGKILL: nothing is flushed, no
// deferred function runs, open transactions are lost. Production leaves the
// variable unset, and then nothing here does anything.
package fault

import (
	"log/slog"
	"os"
)

// Env is the variable naming the point to die at.
const Env = "CLOUDPHONE_FAULT"

// ExitStatus is the status a process dies with at its fault point.
const ExitStatus = 137

// ExitAt returns a hook to call with the name of each point a process
// passes: it exits at once when the name is point. An empty point gives nil
// (no hook).
func ExitAt(point string, log *slog.Logger) func(name string) {
	if point == "" {
		return nil
	}
	return func(name string) {
		if name != point {
			return
		}
		if log != nil {
			log.Error("fault injection: exiting at fault point", "point", name, "status", ExitStatus)
		}
		os.Exit(ExitStatus)
	}
}
