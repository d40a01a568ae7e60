// Package internalapi calls another context's internal HTTP API
// (/internal/v1/...), the way the contexts' clients share: JSON bodies, an
// HTTP client that carries a service token (servicetoken.Client), a bounded
// answer, and one mapping of failures. A transport failure is apierr
// Unavailable; an answer other than 2xx is a *Refusal, which each caller
// turns into what its callee's refusals mean to it.
package internalapi

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

// maxAnswer bounds what is read of an answer.
const maxAnswer = 64 << 10

// Client calls one context's internal API. Safe for concurrent use.
type Client struct {
	base    string
	http    *http.Client
	service string // what the callee is, for messages: "billing"
}

// New returns a client of the API at baseURL (the value of setting, named in
// the error) through c, for the service named service in messages. It fails
// on a base URL that is not absolute http(s) or a nil client.
func New(setting, baseURL string, c *http.Client, service string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s %q is not an http(s) URL", setting, baseURL)
	}
	if c == nil {
		return nil, fmt.Errorf("the client of %s needs an HTTP client", service)
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: c, service: service}, nil
}

// Refusal is an answer other than 2xx: its status and the platform's error
// body, when it had one.
type Refusal struct {
	Status  int
	Code    apierr.Code // "" when the body was not an error body
	Message string
	what    string
	raw     []byte
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%s: status %d: %s", r.what, r.Status, bytes.TrimSpace(r.raw))
}

// Call sends method to path (escaped by the caller) with body as JSON (nil:
// no body) and decodes a 2xx answer into out (nil: ignored; an answer that
// does not decode leaves out as it was). what names the call in errors. A
// transport failure is apierr Unavailable; an answer other than 2xx is a
// *Refusal.
func (c *Client) Call(ctx context.Context, method, path string, body, out any, what string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.Unavailable(fmt.Errorf("%s: %w", what, err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode/100 == 2 {
		if out != nil {
			_ = json.Unmarshal(raw, out)
		}
		return nil
	}
	r := &Refusal{Status: resp.StatusCode, what: what, raw: raw}
	var eb apierr.Body
	if json.Unmarshal(raw, &eb) == nil {
		r.Code, r.Message = eb.Error.Code, eb.Error.Message
	}
	return r
}

// Unavailable wraps cause as apierr Unavailable: the service cannot answer
// now.
func (c *Client) Unavailable(cause error) error {
	return apierr.Wrap(apierr.Unavailable, cause, "%s is unavailable, try again shortly", c.service)
}
