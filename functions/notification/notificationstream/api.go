package notificationstream

import (
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Summary: "Your notifications as they happen (Server-Sent Events)",
		Doc: "One event named notification per notification, its id the sequence to resume from (Last-Event-ID header or last_event_id). " +
			"Notifications after the given id are replayed first; a ping comment keeps the stream open.",
		Query:        map[string]string{LastEventIDParam: "resume after this id, for clients that cannot set Last-Event-ID"},
		Header:       map[string]string{"Last-Event-ID": "resume after this id"},
		ResponseType: "text/event-stream"},
}
