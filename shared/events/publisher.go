package events

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/shared/tracing"
)

// HTTPPublisher POSTs events in binary mode to a broker's ingress URL (K_SINK
// on Knative). Safe for concurrent use.
type HTTPPublisher struct {
	URL    string
	Client *http.Client
	// Authorize, when set, adds the sender's credentials to each request
	// (a sender token, see eventauth); its error fails the send.
	Authorize func(*http.Request) error
}

// NewHTTPPublisher returns a publisher for url with a short timeout.
func NewHTTPPublisher(url string) *HTTPPublisher {
	return &HTTPPublisher{URL: url, Client: &http.Client{Timeout: 10 * time.Second}}
}

// Send posts e and succeeds only on a 2xx answer.
func (p *HTTPPublisher) Send(ctx context.Context, e event.Event) error {
	req, err := cehttp.NewHTTPRequestFromEvent(ctx, p.URL, e)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", e.Type(), err)
	}
	tracing.Inject(ctx, req.Header)
	if p.Authorize != nil {
		if err := p.Authorize(req); err != nil {
			return fmt.Errorf("send %s %s: %w", e.Type(), e.ID(), err)
		}
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("send %s %s: %w", e.Type(), e.ID(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("send %s %s: broker answered %s", e.Type(), e.ID(), resp.Status)
	}
	return nil
}
