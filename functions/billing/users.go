package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/internalapi"
)

// Users tells whether a user exists, as the user context knows. Money is
// never credited to an id nobody has: it could not be spent or refunded, and
// a typo would lose it.
type Users interface {
	// Exists reports whether userID is a user; it fails (apierr
	// Unavailable) when the user context cannot answer.
	Exists(ctx context.Context, userID string) (bool, error)
}

// UsersClient asks the user context's internal quota API (GET
// /internal/v1/quotas/{user_id}, 404 for an unknown user). Safe for
// concurrent use.
type UsersClient struct{ api *internalapi.Client }

// NewUsersClient returns a UsersClient of the API at baseURL through c,
// which is expected to carry a service token for the user context
// (servicetoken.Client); it fails on a base URL that is not absolute
// http(s) or a nil client.
func NewUsersClient(baseURL string, c *http.Client) (*UsersClient, error) {
	api, err := internalapi.New("CLOUDPHONE_USER_URL", baseURL, c, "the user service")
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	return &UsersClient{api: api}, nil
}

// Exists implements Users.
func (u *UsersClient) Exists(ctx context.Context, userID string) (bool, error) {
	err := u.api.Call(ctx, http.MethodGet, "/internal/v1/quotas/"+url.PathEscape(userID), nil, nil, "user "+userID)
	var r *internalapi.Refusal
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &r) && r.Status == http.StatusNotFound:
		return false, nil
	case r != nil:
		return false, u.api.Unavailable(r)
	}
	return false, err
}

// CheckUsers makes Credit and TopUp refuse user ids that users does not
// know. Call it before s serves requests.
func (s *Service) CheckUsers(users Users) { s.users = users }

// known fails with code when userID is not a user (and with Unavailable when
// that cannot be told); without a Users it passes.
func (s *Service) known(ctx context.Context, userID string, code apierr.Code, field string) error {
	if s.users == nil {
		return nil
	}
	ok, err := s.users.Exists(ctx, userID)
	if err != nil {
		return err
	}
	if !ok {
		return apierr.New(code, "%s: no user %s", field, userID)
	}
	return nil
}
