package adminnodes

import (
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Access: function.AccessAdmin, Summary: "List the device hosts", Response: List{}},
	{Route: RouteAdd, Access: function.AccessAdmin, Summary: "Register a device host after checking its Docker engine",
		Request: device.NodeRegistration{}, Status: 201, Response: device.Node{}},
	{Route: RouteUpdate, Access: function.AccessAdmin, Summary: "Change a device host's capacity, labels or status; drain it and move its stopped phones",
		Request: device.NodeUpdate{}, Response: device.Node{}},
	{Route: RouteDelete, Access: function.AccessAdmin, Summary: "Remove a device host that holds no phones", Status: 204},
}
