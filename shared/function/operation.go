package function

import (
	"fmt"
	"slices"
)

// Operation documents one route of an HTTP function for the API reference:
// the JSON it takes and answers. The reference is generated from the
// operations of every function, so it changes only with them.
type Operation struct {
	Route   string // one of the function's Routes, "POST /api/v1/devices"
	Summary string // one line: what the route does
	Doc     string // more, when the summary is not enough
	// Access is who may call the route.
	Access Access
	// Query lists the query parameters the route reads, by name, with a
	// line each.
	Query map[string]string
	// Header lists the request headers the route reads, likewise.
	Header map[string]string
	// Request is the zero value of the JSON body's struct, or a Schema; nil
	// when the route reads no body.
	Request any
	// BodyOptional marks a body the route may go without.
	BodyOptional bool
	// RequestType is the body's media type when it is not JSON
	// ("multipart/form-data"); Request then describes its fields.
	RequestType string
	// Status is the success status (200 when zero); Response is the zero
	// value of the JSON it answers with, nil for none. ResponseType is the
	// media type of a response that is not JSON ("image/png").
	Status       int
	Response     any
	ResponseType string
	// AlsoStatus lists other success statuses that answer the same body
	// (200 for a retried request that changed nothing).
	AlsoStatus []int
}

// Schema is a JSON Schema given as is, for a body no Go type describes (a
// multipart form).
type Schema map[string]any

// Access says who may call a route.
type Access string

// The kinds of callers a route admits.
const (
	AccessUser     Access = ""         // a signed-in user (bearer access token)
	AccessAdmin    Access = "admin"    // a signed-in administrator
	AccessPublic   Access = "public"   // anyone
	AccessService  Access = "service"  // another function (service token)
	AccessSigned   Access = "signed"   // a signed webhook (payment provider)
	AccessTicketed Access = "ticketed" // a one-time ticket in the query
)

// checkAPI reports an operation whose route the function does not serve, a
// route documented twice, or a success status outside 2xx (101 for an upgrade).
func (s Spec) checkAPI() error {
	seen := map[string]bool{}
	for _, op := range s.API {
		switch {
		case !slices.Contains(s.Routes, op.Route):
			return fmt.Errorf("function %s: operation for %q, which it does not serve", s.Name, op.Route)
		case seen[op.Route]:
			return fmt.Errorf("function %s: %q documented twice", s.Name, op.Route)
		case op.Status != 0 && op.Status != 101 && (op.Status < 200 || op.Status > 299):
			return fmt.Errorf("function %s: %q succeeds with %d", s.Name, op.Route, op.Status)
		}
		seen[op.Route] = true
	}
	return nil
}
