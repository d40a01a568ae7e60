// Package userfunctions lists the user context's functions and the event
// types it produces: the one place the context declares what it deploys. The
// catalog concatenates every context's lists.
package userfunctions

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/cloudphone/cloudphone/functions/user/adminipbans"
	"github.com/cloudphone/cloudphone/functions/user/adminusers"
	"github.com/cloudphone/cloudphone/functions/user/authlogin"
	"github.com/cloudphone/cloudphone/functions/user/authlogout"
	"github.com/cloudphone/cloudphone/functions/user/authrefresh"
	"github.com/cloudphone/cloudphone/functions/user/authregister"
	"github.com/cloudphone/cloudphone/functions/user/internal/wiring"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/useroutboxredrive"
	"github.com/cloudphone/cloudphone/functions/user/userprofile"
	"github.com/cloudphone/cloudphone/functions/user/userquotagrants"
	"github.com/cloudphone/cloudphone/functions/user/userquotainternal"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entries are the functions of the user context (accounts and access), in
// catalog order.
var Entries = []function.Entry{
	authregister.Entry,
	authlogin.Entry,
	authrefresh.Entry,
	authlogout.Entry,
	userprofile.Entry,
	userquotainternal.Entry,
	userquotagrants.Entry,
	adminusers.Entry,
	adminipbans.Entry,
	useroutboxredrive.Entry,
}

// Events are the event types the user context produces (and the commands it
// owns), with their payloads.
var Events = []function.EventType{
	{Type: userevents.EventRegistered, Payload: userevents.Registered{}, Doc: "a user registered; subject is the user id"},
	{Type: userevents.EventQuotaGrantRequested, Payload: userevents.QuotaGrantRequested{},
		Doc: "command of the purchase saga: add a plan's quota to a user; subject is the grant (order) id"},
	{Type: userevents.EventQuotaRevokeRequested, Payload: userevents.QuotaRevokeRequested{},
		Doc: "command of the purchase saga or subscription expiry: take a grant back; subject is the grant id"},
	{Type: userevents.EventQuotaGranted, Payload: userevents.QuotaGranted{}, Doc: "reply: the grant is active; subject is the grant id"},
	{Type: userevents.EventQuotaGrantRefused, Payload: userevents.QuotaGrantRefused{}, Doc: "reply: the grant will never apply (reason); subject is the grant id"},
	{Type: userevents.EventQuotaRevoked, Payload: userevents.QuotaRevoked{}, Doc: "reply: the grant is revoked (also when unknown or revoked before); subject is the grant id"},
	{Type: userevents.EventQuotaExceeded, Payload: userevents.QuotaExceeded{}, Doc: "a reservation or start was refused for lack of quota; subject is the user id"},
	{Type: userevents.EventOutboxRedriveRequested, Payload: events.Tick{}, Doc: "time to re-drive the user context's parked outbox rows"},
}

// Bootstrap returns the local platform's first-start step: it creates the
// admin account when there is none, with adminPassword or, when that is empty,
// a generated password printed once to w.
func Bootstrap(w io.Writer) func(ctx context.Context, r *process.Resources, adminPassword string) error {
	return func(ctx context.Context, r *process.Resources, adminPassword string) error {
		svc, err := wiring.Service(ctx, r)
		if err != nil {
			return err
		}
		generated := adminPassword == ""
		if generated {
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			adminPassword = base64.RawURLEncoding.EncodeToString(b)
		}
		created, err := svc.EnsureAdmin(ctx, adminPassword)
		if err != nil {
			return err
		}
		if created && generated {
			fmt.Fprintf(w, "\nCreated the admin account. Username: admin  Password: %s  (shown once; set CLOUDPHONE_ADMIN_PASSWORD to choose it)\n", adminPassword)
		}
		return nil
	}
}
