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
// (/internal/v1/quotas/{user_id}/reserve|release|start|stop) at BaseURL with
// Client, which is expected to carry a service token for the user context
// (servicetoken.Client). Safe for concurrent use.
type QuotaClient struct {
	BaseURL string
	Client  *http.Client
}

// NewQuotaClient returns a QuotaClient; it fails on a base URL that is not
// absolute http(s).
func NewQuotaClient(baseURL string, c *http.Client) (*QuotaClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("device: CLOUDPHONE_USER_URL %q is not an http(s) URL", baseURL)
	}
	if c == nil {
		return nil, fmt.Errorf("device: NewQuotaClient needs an HTTP client")
	}
	return &QuotaClient{BaseURL: strings.TrimRight(baseURL, "/"), Client: c}, nil
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
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	u := q.BaseURL + "/internal/v1/quotas/" + url.PathEscape(userID) + "/" + op
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := q.Client.Do(req)
	if err != nil {
		return apierr.Wrap(apierr.Unavailable, fmt.Errorf("quota %s for user %s: %w", op, userID, err),
			"the quota service is unavailable, try again shortly")
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		if out != nil {
			_ = json.Unmarshal(raw, out)
		}
		return nil
	}
	var eb apierr.Body
	_ = json.Unmarshal(raw, &eb)
	cause := fmt.Errorf("quota %s for user %s: status %d: %s", op, userID, resp.StatusCode, bytes.TrimSpace(raw))
	switch {
	case eb.Error.Code == apierr.QuotaExceeded:
		return apierr.Wrap(apierr.QuotaExceeded, cause, "%s", eb.Error.Message)
	case resp.StatusCode == http.StatusNotFound:
		return apierr.Wrap(apierr.QuotaExceeded, cause, "quota exceeded: you have no device quota")
	case resp.StatusCode == http.StatusConflict:
		return apierr.Wrap(apierr.Conflict, cause, "the device's quota reservation does not match")
	}
	return apierr.Wrap(apierr.Unavailable, cause, "the quota service is unavailable, try again shortly")
}
