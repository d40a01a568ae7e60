package billing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
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
// /internal/v1/quotas/{user_id}, 404 for an unknown user) at BaseURL with
// Client, which is expected to carry a service token for the user context
// (servicetoken.Client). Safe for concurrent use.
type UsersClient struct {
	BaseURL string
	Client  *http.Client
}

// NewUsersClient returns a UsersClient; it fails on a base URL that is not
// absolute http(s) or a nil client.
func NewUsersClient(baseURL string, c *http.Client) (*UsersClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("billing: CLOUDPHONE_USER_URL %q is not an http(s) URL", baseURL)
	}
	if c == nil {
		return nil, fmt.Errorf("billing: NewUsersClient needs an HTTP client")
	}
	return &UsersClient{BaseURL: strings.TrimRight(baseURL, "/"), Client: c}, nil
}

// Exists implements Users.
func (u *UsersClient) Exists(ctx context.Context, userID string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.BaseURL+"/internal/v1/quotas/"+url.PathEscape(userID), nil)
	if err != nil {
		return false, err
	}
	resp, err := u.Client.Do(req)
	if err != nil {
		return false, apierr.Wrap(apierr.Unavailable, err, "the user service cannot be reached")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, apierr.Wrap(apierr.Unavailable, fmt.Errorf("user service answered %d", resp.StatusCode), "the user service cannot tell")
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
