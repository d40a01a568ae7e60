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

// Quota is the user context's quota service as the device context uses it.
// Every method is idempotent by device id. A refusal for lack of quota is
// apierr QuotaExceeded; an unreachable or failing service is apierr
// Unavailable.
type Quota interface {
	// Reserve records that deviceID of userID holds its resources.
	Reserve(ctx context.Context, userID string, r QuotaReservation) error
	// Release deletes the reservation (and running slot) of deviceID.
	Release(ctx context.Context, userID, deviceID string) error
	// Start counts deviceID as running (the running-devices limit) and
	// returns the user's idle limit in minutes (0: the user context named
	// none, and the device keeps the one it has).
	Start(ctx context.Context, userID, deviceID string) (idleMinutes int, err error)
	// Stop stops counting deviceID as running.
	Stop(ctx context.Context, userID, deviceID string) error
}

// QuotaReservation is the body of the reserve call.
type QuotaReservation struct {
	DeviceID  string `json:"device_id"`
	CPUCores  int    `json:"cpu_cores"`
	MemoryMB  int    `json:"memory_mb"`
	StorageGB int    `json:"storage_gb"`
}

// QuotaClient calls the user context's internal quota API
// (/internal/v1/quotas/{user_id}/reserve|release|start|stop). Safe for
// concurrent use.
type QuotaClient struct{ api *internalapi.Client }

// NewQuotaClient returns a QuotaClient of the API at baseURL through c,
// which is expected to carry a service token for the user context
// (servicetoken.Client); it fails on a base URL that is not absolute
// http(s) or a nil client.
func NewQuotaClient(baseURL string, c *http.Client) (*QuotaClient, error) {
	api, err := internalapi.New("CLOUDPHONE_USER_URL", baseURL, c, "the quota service")
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return &QuotaClient{api: api}, nil
}

// Reserve implements Quota.
func (q *QuotaClient) Reserve(ctx context.Context, userID string, r QuotaReservation) error {
	return q.post(ctx, userID, "reserve", r)
}

// Release implements Quota.
func (q *QuotaClient) Release(ctx context.Context, userID, deviceID string) error {
	return q.post(ctx, userID, "release", deviceBody{deviceID})
}

// Start implements Quota.
func (q *QuotaClient) Start(ctx context.Context, userID, deviceID string) (int, error) {
	var st struct {
		IdleMinutes int `json:"idle_minutes"`
	}
	err := q.call(ctx, userID, "start", deviceBody{deviceID}, &st)
	return max(st.IdleMinutes, 0), err
}

// Stop implements Quota.
func (q *QuotaClient) Stop(ctx context.Context, userID, deviceID string) error {
	return q.post(ctx, userID, "stop", deviceBody{deviceID})
}

type deviceBody struct {
	DeviceID string `json:"device_id"`
}

// post calls one quota route and maps its answer: 2xx is nil; 403
// quota_exceeded passes through; 404 (no quota for the user) is
// QuotaExceeded; 409 is Conflict; any other answer or a transport failure is
// Unavailable, with the detail kept as the cause.
func (q *QuotaClient) post(ctx context.Context, userID, op string, body any) error {
	return q.call(ctx, userID, op, body, nil)
}

// call is post that decodes a 2xx answer into out (nil: ignored); an answer
// it cannot decode is taken as one that names nothing.
func (q *QuotaClient) call(ctx context.Context, userID, op string, body, out any) error {
	err := q.api.Call(ctx, http.MethodPost, "/internal/v1/quotas/"+url.PathEscape(userID)+"/"+op, body, out,
		"quota "+op+" for user "+userID)
	var r *internalapi.Refusal
	if !errors.As(err, &r) {
		return err
	}
	switch {
	case r.Code == apierr.QuotaExceeded:
		return apierr.Wrap(apierr.QuotaExceeded, r, "%s", r.Message)
	case r.Status == http.StatusNotFound:
		return apierr.Wrap(apierr.QuotaExceeded, r, "quota exceeded: you have no device quota")
	case r.Status == http.StatusConflict:
		return apierr.Wrap(apierr.Conflict, r, "the device's quota reservation does not match")
	}
	return q.api.Unavailable(r)
}
