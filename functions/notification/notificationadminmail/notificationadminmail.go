// Package notificationadminmail is the notification-admin-mail function: the messages
// the local platform's SMTP catcher caught, for administrators.
package notificationadminmail

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/maildrop"
)

// Name is the function's name in the catalog.
const Name = "notification-admin-mail"

// Route is the function's route.
const Route = "GET /api/v1/admin/mail"

// Routes lists every route, for the catalog.
var Routes = []string{Route}

// Mail is one caught message.
type Mail struct {
	ID         string    `json:"id"`
	Envelope   Envelope  `json:"envelope"`
	ReceivedAt time.Time `json:"received_at"`
	maildrop.Parsed
}

// Envelope is the message's SMTP envelope.
type Envelope struct {
	From string   `json:"from"`
	To   []string `json:"to"`
}

// Function answers Route for administrators: the caught messages, newest
// first (?limit 1–100, default 20; ?to=address keeps those for one
// recipient), with their subject and text and HTML bodies. Where a real
// mail server is used (no catcher folder configured) it answers 404. Safe
// for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function listing the catcher's folder dir ("" when there
// is no catcher), checking tokens with v. It panics when v or log is nil.
func New(dir string, v *auth.Verifier, log *slog.Logger) *Function {
	if v == nil || log == nil {
		panic("notificationadminmail: New needs an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	mux.Handle(Route, auth.Require(v, log)(auth.Route(auth.Access{Role: auth.RoleAdmin}, log,
		func(_ context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
			if dir == "" {
				return 0, nil, apierr.New(apierr.NotFound, "no mail catcher runs here: mail goes to the server in SMTP_URL")
			}
			limit, err := httpjson.Limit(r, notification.MaxPageSize)
			if err != nil {
				return 0, nil, err
			}
			if limit == 0 {
				limit = notification.DefaultPageSize
			}
			to := r.URL.Query().Get("to")
			msgs, err := maildrop.List(dir, 0)
			if err != nil {
				return 0, nil, err
			}
			items := []Mail{}
			for _, m := range msgs {
				if len(items) == limit {
					break
				}
				if to != "" && !slices.Contains(m.To, to) {
					continue
				}
				p, err := maildrop.Parse(m.Raw)
				if err != nil {
					p = maildrop.Parsed{Subject: "(unreadable message: " + err.Error() + ")"}
				}
				items = append(items, Mail{ID: m.ID, Envelope: Envelope{From: m.From, To: m.To}, ReceivedAt: m.ReceivedAt, Parsed: p})
			}
			return http.StatusOK, List{Items: items}, nil
		})))
	return &Function{mux: mux}
}

// List is the answer of Route, newest first.
type List struct {
	Items []Mail `json:"items"`
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }
