// Package userquotagrants is the user-quota-grants function: it applies the
// purchase saga's quota commands (grant a plan's quota, revoke it) and answers
// each with a reply event that the broker routes back to billing.
package userquotagrants

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "user-quota-grants"

// Consumes are the command types the function handles.
var Consumes = []string{userevents.EventQuotaGrantRequested, userevents.EventQuotaRevokeRequested}

// Replies are the event types it answers with.
var Replies = []string{userevents.EventQuotaGranted, userevents.EventQuotaGrantRefused, userevents.EventQuotaRevoked}

// Function handles the quota commands. Every command that names a grant and a
// user is answered with a reply (granted, grant.refused or revoked), also when
// it is delivered again; a command whose data cannot be read or names no
// usable grant or user is refused permanently (dead-lettered); a database
// failure is retried. Safe for concurrent use.
type Function struct {
	svc *user.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *user.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("quotagrants: New needs a user.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle applies one command and returns its reply.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var (
		reply event.Event
		err   error
	)
	switch e.Type() {
	case userevents.EventQuotaGrantRequested:
		var cmd userevents.QuotaGrantRequested
		if err := e.DataAs(&cmd); err != nil {
			return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		reply, err = f.svc.GrantQuota(ctx, e, cmd)
	case userevents.EventQuotaRevokeRequested:
		var cmd userevents.QuotaRevokeRequested
		if err := e.DataAs(&cmd); err != nil {
			return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		reply, err = f.svc.RevokeQuota(ctx, e, cmd)
	default:
		return nil, function.Permanent(fmt.Errorf("%s does not handle %s", Name, e.Type()))
	}
	if err != nil {
		return nil, err
	}
	return &reply, nil
}
