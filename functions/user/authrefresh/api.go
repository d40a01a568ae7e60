package authrefresh

import (
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/function"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: Route, Access: function.AccessPublic, Summary: "Trade a refresh token for new tokens",
		Doc:     "The refresh token is used once: presenting it again ends its whole family of sessions.",
		Request: user.RefreshRequest{}, Response: user.Tokens{}},
}
