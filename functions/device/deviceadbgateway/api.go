package deviceadbgateway

import (
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Access: function.AccessTicketed, Summary: "ADB to a running phone over a WebSocket",
		Doc: "Upgrades to a WebSocket carrying ADB's wire protocol in binary messages, once the ticket of " +
			"GET /api/v1/devices/{id}/connection passes (single use, a minute). 401 for a bad or used ticket, 409 when the phone does not run, 429 beyond your open sessions.",
		Query:  map[string]string{"ticket": "the ticket of GET /api/v1/devices/{id}/connection"},
		Status: http.StatusSwitchingProtocols},
}
