package device

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/internalapi"
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
// (/internal/v1/funds/{user_id}/check). Safe for concurrent use.
type FundsClient struct{ api *internalapi.Client }

// NewFundsClient returns a FundsClient of the API at baseURL through c,
// which is expected to carry a service token for the billing context
// (servicetoken.Client); it fails on a base URL that is not absolute
// http(s) or a nil client.
func NewFundsClient(baseURL string, c *http.Client) (*FundsClient, error) {
	api, err := internalapi.New("CLOUDPHONE_BILLING_URL", baseURL, c, "billing")
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return &FundsClient{api: api}, nil
}

// CoverHour implements Funds.
func (f *FundsClient) CoverHour(ctx context.Context, userID string, cpuCores, memoryMB int) error {
	err := f.api.Call(ctx, http.MethodPost, "/internal/v1/funds/"+url.PathEscape(userID)+"/check",
		map[string]int{"cpu_cores": cpuCores, "memory_mb": memoryMB}, nil, "funds check for user "+userID)
	var r *internalapi.Refusal
	if !errors.As(err, &r) {
		return err
	}
	if r.Code == apierr.InsufficientFunds {
		e := apierr.Wrap(apierr.InsufficientFunds, r, "%s", r.Message)
		e.Status = http.StatusConflict
		return e
	}
	return f.api.Unavailable(r)
}
