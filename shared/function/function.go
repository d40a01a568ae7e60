// Package function serves functions with one contract on Knative, OpenFaaS and
// the local platform: the two Handle shapes of Knative Functions, the
// Start/Stop/Ready/Alive lifecycle, the health paths both platforms probe,
// binary and structured CloudEvents, and the mapping of results to statuses.
package function

import (
	"context"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// HTTPFunction answers HTTP requests.
type HTTPFunction interface {
	Handle(w http.ResponseWriter, r *http.Request)
}

// EventFunction handles one CloudEvent. A nil error acknowledges it and a
// non-nil reply is sent back to the broker, which routes it on atomically with
// the acknowledgement. An error is mapped by EventStatus: a plain error is
// retried (500), an apierr with a permanent code goes to the dead-letter sink
// (4xx), conflict and rate_limited mean "not yet" and are retried with backoff.
type EventFunction interface {
	Handle(ctx context.Context, e event.Event) (*event.Event, error)
}

// Starter is called once before the function is ready, with the process
// configuration (environment and secrets). Serving does not wait for it:
// Ready reports false until it has returned nil.
type Starter interface {
	Start(ctx context.Context, cfg map[string]string) error
}

// Stopper is called once after the server has drained.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Readier reports whether the function can take traffic (its pools usable).
type Readier interface {
	Ready(ctx context.Context) (bool, error)
}

// Aliver reports whether the process should be kept.
type Aliver interface {
	Alive(ctx context.Context) (bool, error)
}

// Kind is how a function is invoked.
type Kind string

// The two kinds of function.
const (
	KindHTTP  Kind = "http"
	KindEvent Kind = "event"
)

// Spec describes one function: the catalog's entry, from which the manifests
// are rendered and by which the local platform routes.
type Spec struct {
	Name     string   // DNS-1035 name, unique across the platform
	Context  string   // bounded context: user, billing, device, app, notification, scheduler
	Kind     Kind     // http or event
	Routes   []string // HTTP functions: "POST /api/v1/auth/register"
	Consumes []string // event functions: the event types it is subscribed to
	Emits    []string // event types it writes to its outbox
	Replies  []string // event types it may return as a reply
	Schedule string   // cron expression when a PingSource/cron-connector drives it
	MinScale int      // 0 = scale to zero
	MaxScale int      // 0 = unlimited
	// Concurrency is the soft per-instance concurrency target (0 = platform default).
	Concurrency int
	// Timeout bounds one request or delivery, in seconds (0 = 30).
	TimeoutSeconds int
	// Secrets are the secret files the function reads through config
	// `secret:"..."` tags (the Secret* names). DATABASE_URL and REDIS_URL are
	// given to every function and are not listed.
	Secrets []string
	// Delivery overrides the Trigger delivery of the function's
	// subscriptions; nil means the platform default.
	Delivery *Delivery
	// API documents the routes of an HTTP function, one operation each, for
	// the API reference.
	API []Operation
	// Redrives marks the function that sends dead letters back to the
	// broker: its context may send every type some function consumes,
	// under the event's own id, so that only the subscriber that refused it
	// takes it again.
	Redrives bool
}

// Delivery is the retry policy of the Triggers that feed one function. The
// per-attempt timeout is the function's TimeoutSeconds.
type Delivery struct {
	Retry        int           // retries after the first attempt, ≥ 0
	BackoffDelay time.Duration // first backoff; doubles on every retry
}

// Public reports whether the function serves public (not internal) routes.
func (s Spec) Public() bool {
	for _, r := range s.Routes {
		if _, path := SplitRoute(r); len(path) >= 8 && path[:8] == "/api/v1/" {
			return true
		}
	}
	return false
}

// SplitRoute splits "POST /api/v1/x" into method and path; a route without a
// method has method "".
func SplitRoute(route string) (method, path string) {
	for i := 0; i < len(route); i++ {
		if route[i] == ' ' {
			return route[:i], route[i+1:]
		}
	}
	return "", route
}
