package billingplans

import (
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteList, Access: function.AccessPublic, Summary: "List the plans on sale", Response: List{}},
	{Route: RouteGet, Access: function.AccessPublic, Summary: "One plan", Response: billing.Plan{}},
	{Route: RouteCreate, Access: function.AccessAdmin, Summary: "Create a plan", Request: billing.PlanRequest{}, Status: http.StatusCreated, Response: billing.Plan{}},
	{Route: RouteUpdate, Access: function.AccessAdmin, Summary: "Change a plan",
		Doc: "Orders already placed keep the price they were placed at.", Request: billing.PlanRequest{}, Response: billing.Plan{}},
}
