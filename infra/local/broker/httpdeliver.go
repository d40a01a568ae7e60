package broker

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/tracing"
)

// HTTPDeliverer delivers over HTTP, as the deployable broker does on
// OpenFaaS: a binary CloudEvent POSTed to URL(subscriber) with the broker's
// sender token for that subscriber; the answer's status is the delivery's
// status and a CloudEvent in a 2xx answer is the reply. Safe for concurrent
// use.
type HTTPDeliverer struct {
	URL    func(subscriber string) string // where subscriber is reached
	Signer *eventauth.Signer
	Client *http.Client // http.DefaultClient when nil; the trigger's timeout bounds each call
}

// Deliver implements Deliverer.
func (d *HTTPDeliverer) Deliver(ctx context.Context, subscriber string, e event.Event) (int, *event.Event, error) {
	req, err := cehttp.NewHTTPRequestFromEvent(ctx, d.URL(subscriber), e)
	if err != nil {
		return 0, nil, fmt.Errorf("request to %s: %w", subscriber, err)
	}
	tracing.Inject(ctx, req.Header)
	if err := d.Signer.Authorize(req, eventauth.Broker, subscriber); err != nil {
		return 0, nil, err
	}
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("deliver to %s: %w", subscriber, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return resp.StatusCode, nil, fmt.Errorf("%s", body)
	}
	if resp.Header.Get("Ce-Id") == "" && resp.Header.Get("Content-Type") != "application/cloudevents+json" {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxEventBytes))
		return resp.StatusCode, nil, nil
	}
	reply, err := binding.ToEvent(ctx, cehttp.NewMessageFromHttpResponse(resp))
	if err != nil {
		return http.StatusBadGateway, nil, fmt.Errorf("%s replied with a malformed event: %w", subscriber, err)
	}
	return resp.StatusCode, reply, nil
}
