package adminipbans

import (
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/ipban"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Access: function.AccessAdmin, Summary: "List banned address ranges", Response: List{}},
	{Route: RoutePut, Access: function.AccessAdmin, Summary: "Ban an address or range",
		Doc:     "The path names an address or CIDR range (2001:db8::/48). ttl_seconds 0 bans until lifted.",
		Request: PutRequest{}, Response: ipban.Entry{}},
	{Route: RouteDelete, Access: function.AccessAdmin, Summary: "Lift a ban", Status: http.StatusNoContent},
}
