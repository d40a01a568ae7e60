package catalog

import (
	"time"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// userSpecs are the functions of the user context (accounts and access).
var userSpecs = []runtime.Spec{
	{
		Name: "auth-register", Context: ContextUser, Kind: runtime.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/register"},
		Emits:    []string{user.EventRegistered},
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: "auth-login", Context: ContextUser, Kind: runtime.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/login"},
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: "auth-refresh", Context: ContextUser, Kind: runtime.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/refresh"},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: "auth-logout", Context: ContextUser, Kind: runtime.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/logout"},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: "user-profile", Context: ContextUser, Kind: runtime.KindHTTP,
		Routes:   []string{"GET /api/v1/users/me", "GET /api/v1/quotas/me"},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},

	{
		Name: "user-outbox-redrive", Context: ContextUser, Kind: runtime.KindEvent,
		Consumes: []string{TypeUserOutboxRedriveRequested},
		Schedule: "*/5 * * * *",
		MaxScale: 1, Concurrency: 1, TimeoutSeconds: 60,
	},
}

var userDeployments = map[string]Deployment{
	"auth-register":       {Secrets: []string{SecretUserTokenKey, SecretUserTokenPublicKey}},
	"auth-login":          {Secrets: []string{SecretUserTokenKey, SecretUserTokenPublicKey}},
	"auth-refresh":        {Secrets: []string{SecretUserTokenKey, SecretUserTokenPublicKey}},
	"auth-logout":         {Secrets: []string{SecretUserTokenPublicKey}},
	"user-profile":        {Secrets: []string{SecretUserTokenPublicKey}},
	"user-outbox-redrive": {Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second}},
}

var userEvents = []EventType{
	{Type: user.EventRegistered, Payload: user.Registered{}, Doc: "a user registered; subject is the user id"},
	{Type: TypeUserOutboxRedriveRequested, Payload: events.Tick{}, Doc: "time to re-drive the user context's parked outbox rows"},
}
