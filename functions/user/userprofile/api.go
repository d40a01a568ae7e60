package userprofile

import (
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteMe, Summary: "Your account", Response: user.Profile{}},
	{Route: RouteQuota, Summary: "Your quota and how much of it is used", Response: user.Quota{}},
}
