package billingorders

import (
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RoutePlace, Summary: "Buy a plan",
		Doc: "Answers 202 with the order, pending while the purchase completes (poll GET /api/v1/orders/{id} until it is completed or failed). " +
			"The same Idempotency-Key again answers 200 with the first order instead of buying twice.",
		Header:  map[string]string{IdempotencyHeader: "a key of your choice (at most 128 characters) that makes a retry safe"},
		Request: billing.OrderRequest{}, Status: http.StatusAccepted, AlsoStatus: []int{http.StatusOK}, Response: billing.Order{}},
	{Route: RouteList, Summary: "Your orders, newest first",
		Query:    map[string]string{"limit": "page size, 1 to 100", "cursor": "next_cursor of the previous page"},
		Response: billing.OrdersPage{}},
	{Route: RouteGet, Summary: "One of your orders", Response: billing.Order{}},
	{Route: RouteSubscriptions, Summary: "Your plans, active and ended", Response: Subscriptions{}},
}
