package notificationinbox

import (
	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Summary: "Your notifications, newest first",
		Query:    map[string]string{"unread": "true for unread only", "limit": "page size, 1 to 100", "cursor": "next_cursor of the previous page"},
		Response: notification.Page{}},
	{Route: RouteRead, Summary: "Mark a notification read", Response: notification.Notification{}},
	{Route: RouteReadAll, Summary: "Mark every notification read", Response: notification.ReadAll{}},
}
