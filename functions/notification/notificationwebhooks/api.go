package notificationwebhooks

import (
	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Summary: "Your webhooks", Response: List{}},
	{Route: RouteCreate, Summary: "Add a webhook",
		Doc:     "Answers the signing secret once. Deliveries are POSTed as CloudEvents, signed, retried with backoff; private and loopback addresses are refused.",
		Request: notification.WebhookRequest{}, Status: http.StatusCreated, Response: notification.WebhookCreated{}},
	{Route: RouteGet, Summary: "One of your webhooks", Response: notification.Webhook{}},
	{Route: RouteUpdate, Summary: "Change a webhook", Request: notification.WebhookRequest{}, Response: notification.Webhook{}},
	{Route: RouteDelete, Summary: "Remove a webhook", Status: http.StatusNoContent},
	{Route: RouteDeliveries, Summary: "A webhook's deliveries, newest first, failed ones included",
		Query:    map[string]string{"limit": "page size, 1 to 100", "cursor": "next_cursor of the previous page"},
		Response: notification.DeliveryPage{}},
	{Route: RouteResend, Summary: "Send a delivery again", Status: http.StatusAccepted, Response: notification.Delivery{}},
}
