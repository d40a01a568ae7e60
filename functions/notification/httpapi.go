package notification

import "github.com/cloudphone/cloudphone/shared/auth"

// User is the access of a user's own notification routes.
var User = auth.Access{Permission: PermRead}
