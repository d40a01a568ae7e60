package adminnodes

import (
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Access: function.AccessAdmin, Summary: "List the device hosts", Response: List{}},
	{Route: RouteUpdate, Access: function.AccessAdmin, Summary: "Change a device host's capacity or status",
		Request: device.NodeUpdate{}, Response: device.Node{}},
}
