// Package catalog lists every function of the platform: the single source of
// truth from which the Knative Services, the Triggers, the PingSources and
// stack.yml are rendered (make manifests) and by which the local platform
// routes requests and events.
//
// To add a function, append its runtime.Spec to specs (grouped by context)
// and, when it needs secrets or a non-default delivery, an entry to
// deployments.
package catalog

import (
	"maps"
	"slices"
	"time"

	"github.com/cloudphone/cloudphone/shared/runtime"
)

// The bounded contexts.
const (
	ContextUser         = "user"
	ContextBilling      = "billing"
	ContextDevice       = "device"
	ContextApp          = "app"
	ContextNotification = "notification"
	ContextScheduler    = "scheduler"
)

// Event types that only routing defines (the others are declared beside their
// payloads in their context's package; see Events).
const (
	// TypeUserOutboxRedriveRequested asks user-outbox-redrive to put the user
	// context's parked outbox rows back to pending; its PingSource sends it
	// every five minutes. Each context with an outbox has its own.
	TypeUserOutboxRedriveRequested = "cloudphone.user.outbox.redrive.requested"
)

// DeadLetter is the function every Broker and Trigger names as its dead-letter
// sink. It receives every event whose delivery failed permanently or ran out
// of retries, whatever its type, directly from the broker: it has no Consumes
// and no Trigger.
const DeadLetter = "dead-letter"

// Secret file names (keys of the platform Secret, files under
// CLOUDPHONE_SECRETS_DIR on Knative and /var/openfaas/secrets on OpenFaaS).
const (
	SecretUserTokenKey       = "user-token-key"
	SecretUserTokenPublicKey = "user-token-public-key"
	// SecretServiceTokenPublicKey checks service tokens on /internal/v1 routes.
	SecretServiceTokenPublicKey = "service-token-public-key"
)

// Platform defaults for a function that leaves the field zero.
const (
	DefaultTimeoutSeconds = 30
	DefaultRetry          = 3
	DefaultBackoffDelay   = time.Second
)

// specs is every function, context by context; a new context adds its list.
var specs = slices.Concat(userSpecs, schedulerSpecs, billingSpecs, deviceSpecs, deviceRuntimeSpecs, consoleSpecs)

// Deployment is what a function needs from its platform beyond runtime.Spec.
type Deployment struct {
	// Secrets are the secret files the function reads through config
	// `secret:"..."` tags. DATABASE_URL and REDIS_URL are given to every
	// function and are not listed.
	Secrets []string
	// Delivery overrides the Trigger delivery of the function's subscriptions;
	// nil means DefaultRetry retries, exponential from DefaultBackoffDelay.
	Delivery *Delivery
}

// Delivery is the retry policy of the Triggers that feed one function. The
// per-attempt timeout is the function's TimeoutSeconds.
type Delivery struct {
	Retry        int           // retries after the first attempt, ≥ 0
	BackoffDelay time.Duration // first backoff; doubles on every retry
}

// deployments is every function's Deployment, context by context.
var deployments = mergeDeployments(userDeployments, billingDeployments, deviceDeployments)

func mergeDeployments(parts ...map[string]Deployment) map[string]Deployment {
	out := map[string]Deployment{}
	for _, p := range parts {
		maps.Copy(out, p)
	}
	return out
}

// All returns every function of the platform, grouped by context in a stable
// order. The result is a fresh copy: changing it does not change the catalog.
func All() []runtime.Spec {
	out := make([]runtime.Spec, len(specs))
	for i, s := range specs {
		out[i] = clone(s)
	}
	return out
}

// ByName returns the function called name, or false when there is none.
func ByName(name string) (runtime.Spec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return clone(s), true
		}
	}
	return runtime.Spec{}, false
}

// DeploymentOf returns the platform needs of the function called name; a
// function without an entry needs no secrets and takes the default delivery.
func DeploymentOf(name string) Deployment {
	d := deployments[name]
	d.Secrets = slices.Clone(d.Secrets)
	if d.Delivery != nil {
		c := *d.Delivery
		d.Delivery = &c
	}
	return d
}

// BundleOf names the OpenFaaS function that serves spec. OpenFaaS Community
// Edition allows 15 functions, so the functions of one context share one
// image and one deployment, "cloudphone-<context>", routed by path or event
// type. A scheduled function gets a bundle of its own, "cloudphone-cron-<name>",
// because the cron-connector invokes a whole OpenFaaS function with an empty
// POST that only a single-function bundle can route; so does a long-running
// one (MinScale > 0).
func BundleOf(spec runtime.Spec) string {
	if spec.Schedule != "" {
		return "cloudphone-cron-" + spec.Name
	}
	if spec.MinScale > 0 {
		// A long-running function (device-runtime) keeps its own scale and
		// mounts (the Docker socket or a host's TLS certificates).
		return "cloudphone-" + spec.Name
	}
	return "cloudphone-" + spec.Context
}

// Bundles groups All by OpenFaaS function (see BundleOf): bundle name →
// its functions in catalog order.
func Bundles() map[string][]runtime.Spec {
	return Group(All())
}

// Group groups specs by BundleOf, keeping their order within each bundle.
func Group(specs []runtime.Spec) map[string][]runtime.Spec {
	out := make(map[string][]runtime.Spec)
	for _, s := range specs {
		b := BundleOf(s)
		out[b] = append(out[b], s)
	}
	return out
}

func clone(s runtime.Spec) runtime.Spec {
	s.Routes = slices.Clone(s.Routes)
	s.Consumes = slices.Clone(s.Consumes)
	s.Emits = slices.Clone(s.Emits)
	s.Replies = slices.Clone(s.Replies)
	return s
}
