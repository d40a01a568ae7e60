package admindeadletters

import (
	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Access: function.AccessAdmin, Summary: "Events no function could take, newest first",
		Query: map[string]string{"limit": "at most this many, 1 to 500 (100)"}, Response: List{}},
	{Route: RouteRedrive, Access: function.AccessAdmin, Summary: "Send a dead letter back to the broker",
		Doc:    "Under its original id, so that only the function that refused it processes it again.",
		Status: http.StatusAccepted, Response: scheduler.DeadLetter{}},
}
