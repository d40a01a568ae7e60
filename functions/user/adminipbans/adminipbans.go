// Package adminipbans is the admin-ip-bans function: admins list, add and lift
// entries of the IP deny list that the edge checks before anything else.
package adminipbans

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/clientip"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/ipban"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Name is the function's name in the catalog.
const Name = "admin-ip-bans"

// Routes of the function. An entry is an address or a CIDR range, so it may
// hold a slash: "/api/v1/admin/ip-bans/10.0.0.0/8".
const (
	RouteList   = "GET /api/v1/admin/ip-bans"
	RoutePut    = "PUT /api/v1/admin/ip-bans/{entry...}"
	RouteDelete = "DELETE /api/v1/admin/ip-bans/{entry...}"
)

// Permission is what the caller's token must carry, besides the admin role.
const Permission = "admin:ip-bans"

// MaxTTL bounds a ban given with a ttl (a ban without one lasts until lifted).
const MaxTTL = 365 * 24 * time.Hour

// Function serves the routes. Safe for concurrent use.
type Function struct {
	bans     *ipban.Denylist
	clientIP func(*http.Request) netip.Addr
	log      *slog.Logger
	mux      *http.ServeMux
}

// PutRequest is the body of RoutePut.
type PutRequest struct {
	Reason     string `json:"reason"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

// New returns the function over bans, checking tokens with v; clientIP
// tells the caller's address (an admin may not ban it).
func New(bans *ipban.Denylist, clientIP func(*http.Request) netip.Addr, v *auth.Verifier, log *slog.Logger) *Function {
	if bans == nil || clientIP == nil || v == nil || log == nil {
		panic("ipbans: New needs a deny list, the client address, a verifier and a logger")
	}
	f := &Function{bans: bans, clientIP: clientIP, log: log, mux: httpjson.NewMux(log)}
	admin := func(h auth.HandlerFunc) http.Handler {
		return auth.Require(v, log)(auth.Route(auth.Access{Role: auth.RoleAdmin, Permission: Permission}, log, h))
	}
	f.mux.Handle(RouteList, admin(f.list))
	f.mux.Handle(RoutePut, admin(f.put))
	f.mux.Handle(RouteDelete, admin(f.remove))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// List is the answer of RouteList.
type List struct {
	Entries []ipban.Entry `json:"entries"`
}

func (f *Function) list(ctx context.Context, _ auth.Principal, _ *http.Request) (int, any, error) {
	entries, err := f.bans.List(ctx)
	if err != nil {
		return 0, nil, err
	}
	if entries == nil {
		entries = []ipban.Entry{}
	}
	return http.StatusOK, List{Entries: entries}, nil
}

func (f *Function) put(ctx context.Context, admin auth.Principal, r *http.Request) (int, any, error) {
	var req PutRequest
	if err := httpjson.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	var p validate.Problems
	p.Check(len(req.Reason) <= 200 && validate.NoControlChars(req.Reason), "reason", "at most 200 characters, no control characters")
	p.Check(req.TTLSeconds >= 0 && time.Duration(req.TTLSeconds)*time.Second <= MaxTTL, "ttl_seconds", "between 0 (until lifted) and one year")
	if err := p.Err(); err != nil {
		return 0, nil, err
	}
	// Add refuses a malformed or too wide entry; a usable one must not
	// cover the admin.
	if rng, err := clientip.ParsePrefix(r.PathValue("entry")); err == nil && rng.Bits() >= ipban.MinBits(rng.Addr()) {
		if ip := f.clientIP(r); ip.IsValid() && rng.Contains(ip.Unmap()) {
			return 0, nil, apierr.New(apierr.Invalid, "%s covers your own address %s: it would lock you out", rng, ip)
		}
	}
	entry, err := f.bans.Add(ctx, r.PathValue("entry"), req.Reason, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		return 0, nil, err
	}
	f.log.InfoContext(ctx, "ip ban added", "entry", entry.Range.String(), "by", admin.UserID, "ttl_seconds", req.TTLSeconds)
	return http.StatusOK, entry, nil
}

func (f *Function) remove(ctx context.Context, admin auth.Principal, r *http.Request) (int, any, error) {
	removed, err := f.bans.Remove(ctx, r.PathValue("entry"))
	if err != nil {
		return 0, nil, err
	}
	if !removed {
		return 0, nil, apierr.New(apierr.NotFound, "no ban for %s", r.PathValue("entry"))
	}
	f.log.InfoContext(ctx, "ip ban lifted", "entry", r.PathValue("entry"), "by", admin.UserID)
	return http.StatusNoContent, nil, nil
}
