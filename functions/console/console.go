// Package console is the web console function: the pages people use in a
// browser, served at /console/ ("/" redirects there). Each page is an
// html/template shell; the small script and style sheet served beside them
// (embedded in the binary) call the platform's JSON API with an access token
// kept in memory and renewed through the cookie session (an HttpOnly refresh
// cookie and a CSRF token echoed in a header). The function owns no database
// and calls no other function itself: everything a page shows comes from the
// API, with the caller's own token.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
)

// Name is the function's name in the catalog.
const Name = "web-console"

// The function's routes.
const (
	RouteRoot    = "GET /{$}"
	RouteBare    = "GET /console"
	RouteConsole = "GET /console/"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteRoot, RouteBare, RouteConsole, RouteAPIDocument}

// ContentSecurityPolicy is sent with every page and asset: scripts, styles,
// fetches and images come from the platform's own origin only (images also
// from blob: URLs, which is how screenshots fetched with a token are shown);
// no inline script or style, no framing.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Options says what the platform around the console serves.
type Options struct {
	// Routes are the HTTP routes of every function of the platform, as
	// "METHOD /path"; the console leaves out the parts whose API is not
	// among them (apps, notifications, the phone's screen and shell, the
	// mail catcher), so that no page calls a route that is not there.
	Routes []string
}

// features maps a console feature to the API route it needs.
var features = []struct{ name, route string }{
	{"adb", "GET /api/v1/devices/{id}/screenshot"},
	{"apps", "GET /api/v1/apps"},
	{"install", "POST /api/v1/devices/{id}/apps"},
	{"notifications", "GET /api/v1/notifications"},
	{"mail", "GET /api/v1/admin/mail"},
	{"webhooks", "GET /api/v1/webhooks"},
	{"deadletters", "GET /api/v1/admin/dead-letters"},
}

// page is one console page: its path under /console/, its template and title.
type page struct {
	name   string // the template that fills the layout's main block; also the body's data-page
	title  string
	public bool   // shown without signing in
	admin  bool   // listed only for administrators (the API refuses others anyway)
	needs  string // the feature without which the page is not offered
}

// pages maps a path under /console/ to its page. Phone pages
// (/console/phones/{id}) are matched separately.
var pages = map[string]page{
	"":              {name: "home", title: "Home"},
	"login":         {name: "login", title: "Log in", public: true},
	"signup":        {name: "signup", title: "Sign up", public: true},
	"plans":         {name: "plans", title: "Plans"},
	"phones":        {name: "phones", title: "Phones"},
	"apps":          {name: "apps", title: "Apps", needs: "apps"},
	"notifications": {name: "notifications", title: "Notifications", needs: "notifications"},
	"webhooks":      {name: "webhooks", title: "Webhooks", needs: "webhooks"},
	"admin":         {name: "admin", title: "Admin", admin: true},
	"api":           {name: "api", title: "API reference", public: true},
}

// navOrder is the order of the navigation links.
var navOrder = []string{"", "plans", "phones", "apps", "notifications", "webhooks", "admin", "api"}

// Function serves the console. Safe for concurrent use.
type Function struct {
	log     *slog.Logger
	tmpl    *template.Template
	assets  map[string]asset // by file name
	version string           // a digest of every asset, in asset URLs so caches never serve stale ones
	has     map[string]bool  // the features whose API the platform serves
	api     *apiRef          // the API reference, for its page
	mux     *http.ServeMux
}

type asset struct {
	body []byte
	typ  string
	etag string
}

// New returns the console. It panics when log is nil or an embedded template
// does not parse (a build defect).
func New(log *slog.Logger, opt Options) *Function {
	if log == nil {
		panic("console: New needs a logger")
	}
	f := &Function{log: log, assets: map[string]asset{}, has: map[string]bool{}, mux: http.NewServeMux()}
	for _, ft := range features {
		f.has[ft.name] = slices.Contains(opt.Routes, ft.route)
	}
	all := sha256.New()
	err := fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		all.Write(sum[:])
		typ := mime.TypeByExtension(path.Ext(p))
		if typ == "" {
			typ = "application/octet-stream"
		}
		f.assets[path.Base(p)] = asset{body: b, typ: typ, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("console: embedded assets: %v", err))
	}
	f.version = hex.EncodeToString(all.Sum(nil)[:6])
	if f.api, err = parseAPIRef(f.assets[apiDocument].body); err != nil {
		panic(fmt.Sprintf("console: %v", err))
	}
	f.tmpl = template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))
	f.mux.HandleFunc(RouteRoot, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
	f.mux.HandleFunc(RouteBare, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	})
	f.mux.HandleFunc(RouteConsole, f.serve)
	f.mux.HandleFunc(RouteAPIDocument, f.serveAPIDocument)
	return f
}

// Handle serves one HTTP request: a page, an asset (/console/assets/<file>),
// or 404 with a short page.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	f.mux.ServeHTTP(w, r)
}

// navLink is one navigation entry.
type navLink struct {
	Href, Title string
	Admin       bool
	Current     bool
}

// view is what the layout template receives.
type view struct {
	Page     string
	Title    string
	Public   bool
	Version  string
	Nav      []navLink
	PhoneID  string
	Features string // space-separated, for the script
	Has      map[string]bool
	API      *apiRef // the API reference page's content
}

func (f *Function) serve(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/console/")
	if name, ok := strings.CutPrefix(rest, "assets/"); ok {
		f.serveAsset(w, r, name)
		return
	}
	rest = strings.TrimSuffix(rest, "/")
	p, ok := pages[rest]
	if ok && p.needs != "" && !f.has[p.needs] {
		ok = false
	}
	v := view{Version: f.version, Has: f.has, API: f.api}
	for _, ft := range features {
		if f.has[ft.name] {
			v.Features = strings.TrimSpace(v.Features + " " + ft.name)
		}
	}
	if id, isPhone := strings.CutPrefix(rest, "phones/"); !ok && isPhone && id != "" && !strings.Contains(id, "/") {
		p, ok = page{name: "phone", title: "Phone"}, true
		v.PhoneID = id
	}
	if !ok {
		p = page{name: "notfound", title: "Not found", public: true}
	}
	v.Page, v.Title, v.Public = p.name, p.title, p.public
	for _, k := range navOrder {
		n := pages[k]
		if n.needs != "" && !f.has[n.needs] {
			continue
		}
		v.Nav = append(v.Nav, navLink{Href: "/console/" + k, Title: n.title, Admin: n.admin, Current: n.name == p.name})
	}
	var buf bytes.Buffer
	if err := f.tmpl.ExecuteTemplate(&buf, "layout", v); err != nil {
		f.log.ErrorContext(r.Context(), "console page not rendered", "page", p.name, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
	}
	w.Write(buf.Bytes())
}

func (f *Function) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := f.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.typ)
	w.Header().Set("ETag", a.etag)
	if r.URL.Query().Get("v") == f.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(a.body)
}
