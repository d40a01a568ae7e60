package billingbalance

import (
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteBalance, Summary: "Your balance", Response: billing.Balance{}},
	{Route: RouteTransactions, Summary: "Your ledger, newest first",
		Query:    map[string]string{"limit": "page size, 1 to 100", "cursor": "next_cursor of the previous page"},
		Response: billing.EntriesPage{}},
	{Route: RouteCredit, Access: function.AccessAdmin, Summary: "Credit a user's balance",
		Request: billing.CreditRequest{}, Status: http.StatusCreated, Response: billing.Entry{}},
}
