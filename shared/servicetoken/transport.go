package servicetoken

import (
	"errors"
	"net/http"
	"time"
)

// ClientTimeout bounds a whole internal call made through Client.
const ClientTimeout = 10 * time.Second

// Transport is an http.RoundTripper that sends every request with
// "Authorization: Bearer <service token>" for Audience, from Minter. A failure
// to get a token fails the request without sending it.
type Transport struct {
	Minter   *Minter
	Audience string
	// Base sends the request (default http.DefaultTransport).
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Minter == nil {
		closeBody(req)
		return nil, errors.New("servicetoken: Transport has no Minter")
	}
	tok, err := t.Minter.Token(req.Context(), t.Audience)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+tok)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// Client returns an HTTP client for calls from m's context to audience's
// internal endpoints: each request carries the service token and the whole
// call is bounded by ClientTimeout.
func Client(m *Minter, audience string) *http.Client {
	return &http.Client{Transport: &Transport{Minter: m, Audience: audience}, Timeout: ClientTimeout}
}
