package adminusers

import (
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Access: function.AccessAdmin, Summary: "List users",
		Query:    map[string]string{"q": "part of a username or email", "limit": "page size, 1 to 100", "cursor": "next_cursor of the previous page"},
		Response: user.UserPage{}},
	{Route: RouteRoles, Access: function.AccessAdmin, Summary: "Set a user's roles", Request: user.RolesRequest{}, Response: user.AccountView{}},
	{Route: RouteStatus, Access: function.AccessAdmin, Summary: "Suspend or reactivate a user",
		Doc: "Suspending ends the user's sessions at once.", Request: user.StatusRequest{}, Response: user.AccountView{}},
}
