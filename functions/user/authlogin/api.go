package authlogin

import (
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Access: function.AccessPublic, Summary: "Sign in with a username or email and a password",
		Doc:     "Answers an access token (minutes) and a refresh token (days). Repeated failures lock the account for a while; rate limited per address.",
		Request: user.LoginRequest{}, Response: user.Tokens{}},
}
