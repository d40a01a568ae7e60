package deviceadbapi

import (
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteShell, Summary: "Run a shell command on a running phone",
		Doc:     "Answers the command's output and exit code; output beyond the limit is cut (truncated true).",
		Request: ShellRequest{}, Response: ShellResult{}},
	{Route: RouteScreenshot, Summary: "A screenshot of a running phone", ResponseType: "image/png"},
	{Route: RouteLogs, Summary: "The phone's log as Server-Sent Events",
		Doc:          "One event per log line. With follow=false the stream ends after what the phone holds; otherwise it follows until you leave (an event named end closes it).",
		Query:        map[string]string{"follow": "false to get what the phone holds and end"},
		ResponseType: "text/event-stream"},
}
