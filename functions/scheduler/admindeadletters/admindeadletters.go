// Package admindeadletters is admin-dead-letters: administrators list the
// events the broker gave up on and send one to the broker again once its
// cause is fixed.
package admindeadletters

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "admin-dead-letters"

// The function's routes.
const (
	RouteList    = "GET /api/v1/admin/dead-letters"
	RouteRedrive = "POST /api/v1/admin/dead-letters/{id}/redrive"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteList, RouteRedrive}

// Store is what the function needs of the dead letters.
type Store interface {
	List(ctx context.Context, limit int) ([]scheduler.DeadLetter, error)
	Redrive(ctx context.Context, id int64) (scheduler.DeadLetter, error)
}

// Function answers Routes for a bearer of a valid access token with the admin
// role (401 without a valid token, 403 otherwise): RouteList ({items}, newest
// first, ?limit 1–500, default 100) and RouteRedrive (202 with the letter; an
// unknown id is 404). Safe for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function over store, checking tokens with v. It panics
// when an argument is nil.
func New(store Store, v *auth.Verifier, log *slog.Logger) *Function {
	if store == nil || v == nil || log == nil {
		panic("admindeadletters: New needs a store, an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	require := auth.Require(v, log)
	admin := auth.Access{Role: auth.RoleAdmin}
	mux.Handle(RouteList, require(auth.Route(admin, log, func(ctx context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
		limit, err := httpjson.Limit(r, 500)
		if err != nil {
			return 0, nil, err
		}
		if limit == 0 {
			limit = 100
		}
		items, err := store.List(ctx, limit)
		if items == nil {
			items = []scheduler.DeadLetter{}
		}
		return http.StatusOK, List{Items: items}, err
	})))
	mux.Handle(RouteRedrive, require(auth.Route(admin, log, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id < 1 {
			return 0, nil, apierr.New(apierr.NotFound, "no such dead letter")
		}
		l, err := store.Redrive(ctx, id)
		if err == nil {
			log.InfoContext(ctx, "dead letter re-driven", "dead_letter_id", id, "event_id", l.EventID,
				"event_type", l.Type, "user_id", p.UserID)
		}
		return http.StatusAccepted, l, err
	})))
	return &Function{mux: mux}
}

// List is the answer of RouteList, newest first.
type List struct {
	Items []scheduler.DeadLetter `json:"items"`
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }
