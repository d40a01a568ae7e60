package authlogout

import (
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Summary: "Sign out",
		Doc:     "Ends the session of the access token (and of the refresh token, if given) at once; with everywhere, every session of the user.",
		Request: user.LogoutRequest{}, BodyOptional: true, Status: http.StatusNoContent},
}
