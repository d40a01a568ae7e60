package notificationpreferences

import (
	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteGet, Summary: "How you are told of each kind of notification", Response: notification.Preferences{}},
	{Route: RoutePut, Summary: "Change how you are told", Doc: "Kinds left out keep their setting.",
		Request: notification.PreferenceUpdate{}, Response: notification.Preferences{}},
}
