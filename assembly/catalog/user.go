package catalog

import (
	"time"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

// userSpecs are the functions of the user context (accounts and access).
var userSpecs = []function.Spec{
	{
		Name: "auth-register", Context: ContextUser, Kind: function.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/register"},
		Emits:    []string{user.EventRegistered},
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: "auth-login", Context: ContextUser, Kind: function.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/login"},
		MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: "auth-refresh", Context: ContextUser, Kind: function.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/refresh"},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: "auth-logout", Context: ContextUser, Kind: function.KindHTTP,
		Routes:   []string{"POST /api/v1/auth/logout"},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: "user-profile", Context: ContextUser, Kind: function.KindHTTP,
		Routes:   []string{"GET /api/v1/users/me", "GET /api/v1/quotas/me"},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},

	{
		Name: "user-quota-internal", Context: ContextUser, Kind: function.KindHTTP,
		Routes: []string{
			"POST /internal/v1/quotas/{user_id}/reserve",
			"POST /internal/v1/quotas/{user_id}/release",
			"POST /internal/v1/quotas/{user_id}/start",
			"POST /internal/v1/quotas/{user_id}/stop",
			"GET /internal/v1/quotas/{user_id}",
		},
		Emits:    []string{user.EventQuotaExceeded},
		MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	},
	{
		Name: "user-quota-grants", Context: ContextUser, Kind: function.KindEvent,
		Consumes: []string{user.EventQuotaGrantRequested, user.EventQuotaRevokeRequested},
		Replies:  []string{user.EventQuotaGranted, user.EventQuotaGrantRefused, user.EventQuotaRevoked},
		MaxScale: 5, Concurrency: 20, TimeoutSeconds: 30,
	},
	{
		Name: "admin-users", Context: ContextUser, Kind: function.KindHTTP,
		Routes: []string{
			"GET /api/v1/admin/users",
			"PUT /api/v1/admin/users/{id}/roles",
			"PUT /api/v1/admin/users/{id}/status",
		},
		MaxScale: 3, Concurrency: 50, TimeoutSeconds: 30,
	},
	{
		Name: "admin-ip-bans", Context: ContextUser, Kind: function.KindHTTP,
		Routes: []string{
			"GET /api/v1/admin/ip-bans",
			"PUT /api/v1/admin/ip-bans/{entry...}",
			"DELETE /api/v1/admin/ip-bans/{entry...}",
		},
		MaxScale: 2, Concurrency: 50, TimeoutSeconds: 30,
	},

	{
		Name: "user-outbox-redrive", Context: ContextUser, Kind: function.KindEvent,
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
	"user-quota-internal": {Secrets: []string{SecretUserTokenPublicKey, SecretServiceTokenPublicKey}},
	"user-quota-grants":   {Secrets: []string{SecretUserTokenPublicKey}},
	"admin-users":         {Secrets: []string{SecretUserTokenPublicKey}},
	"admin-ip-bans":       {Secrets: []string{SecretUserTokenPublicKey}},
	"user-outbox-redrive": {Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second}},
}

var userEvents = []EventType{
	{Type: user.EventRegistered, Payload: user.Registered{}, Doc: "a user registered; subject is the user id"},
	{Type: user.EventQuotaGrantRequested, Payload: user.QuotaGrantRequested{},
		Doc: "command of the purchase saga: add a plan's quota to a user; subject is the grant (order) id"},
	{Type: user.EventQuotaRevokeRequested, Payload: user.QuotaRevokeRequested{},
		Doc: "command of the purchase saga or subscription expiry: take a grant back; subject is the grant id"},
	{Type: user.EventQuotaGranted, Payload: user.QuotaGranted{}, Doc: "reply: the grant is active; subject is the grant id"},
	{Type: user.EventQuotaGrantRefused, Payload: user.QuotaGrantRefused{}, Doc: "reply: the grant will never apply (reason); subject is the grant id"},
	{Type: user.EventQuotaRevoked, Payload: user.QuotaRevoked{}, Doc: "reply: the grant is revoked (also when unknown or revoked before); subject is the grant id"},
	{Type: user.EventQuotaExceeded, Payload: user.QuotaExceeded{}, Doc: "a reservation or start was refused for lack of quota; subject is the user id"},
	{Type: TypeUserOutboxRedriveRequested, Payload: events.Tick{}, Doc: "time to re-drive the user context's parked outbox rows"},
}
