package authregister

import (
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Access: function.AccessPublic, Summary: "Create an account",
		Doc:     "Usernames are 3 to 32 letters, digits, dots, dashes or underscores; passwords at least 10 characters. Rate limited per address.",
		Request: user.RegisterRequest{}, Status: http.StatusCreated, Response: user.Profile{}},
}
