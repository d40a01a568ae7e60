package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// Funds is billing's check that a user can pay for a phone, as the device
// context uses it: a phone starts (create, start, restart) only when the
// balance covers an hour of its usage, so that nobody runs one for free
// until the next charging run.
type Funds interface {
	// CoverHour fails with apierr InsufficientFunds (HTTP 409) when
	// userID's balance does not pay for an hour of a phone of that size,
	// and with Unavailable when billing cannot answer.
	CoverHour(ctx context.Context, userID string, cpuCores, memoryMB int) error
}

// FundsClient calls billing's internal funds API
// (/internal/v1/funds/{user_id}/check) at BaseURL with Client, which is
// expected to carry a service token for the billing context
// (servicetoken.Client). Safe for concurrent use.
type FundsClient struct {
	BaseURL string
	Client  *http.Client
}

// NewFundsClient returns a FundsClient; it fails on a base URL that is not
// absolute http(s) or a nil client.
func NewFundsClient(baseURL string, c *http.Client) (*FundsClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("device: CLOUDPHONE_BILLING_URL %q is not an http(s) URL", baseURL)
	}
	if c == nil {
		return nil, fmt.Errorf("device: NewFundsClient needs an HTTP client")
	}
	return &FundsClient{BaseURL: strings.TrimRight(baseURL, "/"), Client: c}, nil
}

// CoverHour implements Funds.
func (f *FundsClient) CoverHour(ctx context.Context, userID string, cpuCores, memoryMB int) error {
	b, err := json.Marshal(map[string]int{"cpu_cores": cpuCores, "memory_mb": memoryMB})
	if err != nil {
		return err
	}
	u := f.BaseURL + "/internal/v1/funds/" + url.PathEscape(userID) + "/check"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.Client.Do(req)
	if err != nil {
		return apierr.Wrap(apierr.Unavailable, fmt.Errorf("funds check for user %s: %w", userID, err),
			"billing is unavailable, try again shortly")
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var eb apierr.Body
	_ = json.Unmarshal(raw, &eb)
	cause := fmt.Errorf("funds check for user %s: status %d: %s", userID, resp.StatusCode, bytes.TrimSpace(raw))
	if eb.Error.Code == apierr.InsufficientFunds {
		e := apierr.Wrap(apierr.InsufficientFunds, cause, "%s", eb.Error.Message)
		e.Status = http.StatusConflict
		return e
	}
	return apierr.Wrap(apierr.Unavailable, cause, "billing is unavailable, try again shortly")
}
