package notificationadminmail

import (
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Access: function.AccessAdmin, Summary: "Mail the platform sent, as the local mail catcher holds it",
		Doc:      "404 where no mail catcher runs (mail goes to the SMTP server configured).",
		Query:    map[string]string{"to": "only mail to this address", "limit": "at most this many, 1 to 100"},
		Response: List{}},
}
