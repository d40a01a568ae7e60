package ratelimit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cloudphone/cloudphone/shared/config"
)

// EnvTable names the environment variable that holds the path of a file
// overriding the default table.
const EnvTable = "CLOUDPHONE_RATE_LIMITS"

// Scope says what a policy's key is.
type Scope string

const (
	// ScopeIP keys by the client IP (IPv6 by /64); the middleware applies it.
	ScopeIP Scope = "ip"
	// ScopeUser keys by the authenticated user id; the middleware applies it
	// when the request carries a principal.
	ScopeUser Scope = "user"
	// ScopeKey is keyed by something the request names (e.g. the account of a
	// login): the middleware applies it through MiddlewareOptions.Key, and a
	// handler can through Limits.Check.
	ScopeKey Scope = "key"
)

// Names of the default rules. Handlers use RuleLoginAccount with Limits.Check.
const (
	RuleIP            = "ip"
	RuleUser          = "user"
	RuleLoginIP       = "auth_login_ip"
	RuleLoginAccount  = "auth_login_account"
	RuleRegisterIP    = "auth_register_ip"
	RuleDeviceCreate  = "device_create"
	RuleOrderCreate   = "order_create"
	RuleAppCreate     = "app_create"
	routeLogin        = "POST /api/v1/auth/login"
	routeRegister     = "POST /api/v1/auth/register"
	routeDeviceCreate = "POST /api/v1/devices"
	routeOrderCreate  = "POST /api/v1/orders"
	routeAppCreate    = "POST /api/v1/apps"
)

// Policy is a rule with where it applies: Route is a net/http pattern
// ("POST /api/v1/auth/login"); empty means every route.
type Policy struct {
	Rule
	Scope Scope
	Route string
}

// Table is the declarative list of policies, in the order they are checked.
type Table []Policy

// DefaultTable returns the platform's default limits (README, Configuration).
func DefaultTable() Table {
	return Table{
		{Rule: Rule{Name: RuleIP, Limit: 120, Window: time.Minute}, Scope: ScopeIP},
		{Rule: Rule{Name: RuleUser, Limit: 300, Window: time.Minute}, Scope: ScopeUser},
		{Rule: Rule{Name: RuleLoginIP, FailClosed: true, Limit: 5, Window: time.Minute}, Scope: ScopeIP, Route: routeLogin},
		{Rule: Rule{Name: RuleLoginAccount, FailClosed: true, Limit: 5, Window: time.Minute}, Scope: ScopeKey, Route: routeLogin},
		{Rule: Rule{Name: RuleRegisterIP, FailClosed: true, Limit: 3, Window: time.Minute}, Scope: ScopeIP, Route: routeRegister},
		{Rule: Rule{Name: RuleDeviceCreate, Limit: 30, Window: time.Minute}, Scope: ScopeUser, Route: routeDeviceCreate},
		{Rule: Rule{Name: RuleOrderCreate, Limit: 5, Window: 5 * time.Minute}, Scope: ScopeUser, Route: routeOrderCreate},
		{Rule: Rule{Name: RuleAppCreate, Limit: 20, Window: 5 * time.Minute}, Scope: ScopeUser, Route: routeAppCreate},
	}
}

// Validate reports the first policy that cannot be enforced: a bad rule, a
// duplicate name, an unknown scope or a route that is not a valid pattern.
func (t Table) Validate() error {
	seen, routes := map[string]bool{}, map[string]bool{}
	mux := http.NewServeMux()
	for _, p := range t {
		if err := p.Rule.Validate(); err != nil {
			return err
		}
		if seen[p.Name] {
			return fmt.Errorf("rate limit rule %s listed twice", p.Name)
		}
		seen[p.Name] = true
		switch p.Scope {
		case ScopeIP, ScopeUser, ScopeKey:
		default:
			return fmt.Errorf("rate limit rule %s: unknown scope %q", p.Name, p.Scope)
		}
		if p.Route != "" && !routes[p.Route] {
			routes[p.Route] = true
			if err := register(mux, p.Route); err != nil {
				return fmt.Errorf("rate limit rule %s: %w", p.Name, err)
			}
		}
	}
	return nil
}

// register adds route to mux, turning ServeMux's panic on a bad or
// conflicting pattern into an error.
func register(mux *http.ServeMux, route string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("route %q: %v", route, p)
		}
	}()
	mux.Handle(route, http.NotFoundHandler())
	return nil
}

// fileRule is a policy as written in the override file.
type fileRule struct {
	Name   string `json:"name"`
	Scope  Scope  `json:"scope,omitempty"`
	Route  string `json:"route,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Window string `json:"window,omitempty"` // Go duration: "1m", "300s"
	// FailClosed: refuse (503) rather than decide per process while Redis
	// is unreachable.
	FailClosed *bool `json:"fail_closed,omitempty"`
}

type fileTable struct {
	Rules []fileRule `json:"rules"`
}

// ParseTable applies an override document (JSON or YAML) to base and returns
// the result. Each entry names a rule: an existing rule takes the fields the
// entry sets, a new name adds a rule (then scope, limit and window are
// required). Unknown fields and invalid results are errors.
//
//	{"rules": [{"name": "auth_login_ip", "limit": 10}, {"name": "export", "scope": "user",
//	  "route": "POST /api/v1/exports", "limit": 2, "window": "1h"}]}
func ParseTable(doc []byte, base Table) (Table, error) {
	var f fileTable
	if err := yaml.UnmarshalStrict(doc, &f); err != nil {
		return nil, fmt.Errorf("rate limit table: %w", err)
	}
	t := slices.Clone(base)
	for _, fr := range f.Rules {
		if fr.Name == "" {
			return nil, fmt.Errorf("rate limit table: a rule without a name")
		}
		i := slices.IndexFunc(t, func(p Policy) bool { return p.Name == fr.Name })
		if i < 0 {
			t = append(t, Policy{Rule: Rule{Name: fr.Name}})
			i = len(t) - 1
		}
		p := &t[i]
		if fr.Scope != "" {
			p.Scope = fr.Scope
		}
		if fr.Route != "" {
			p.Route = fr.Route
		}
		if fr.Limit != 0 {
			p.Limit = fr.Limit
		}
		if fr.FailClosed != nil {
			p.FailClosed = *fr.FailClosed
		}
		if fr.Window != "" {
			d, err := time.ParseDuration(fr.Window)
			if err != nil {
				return nil, fmt.Errorf("rate limit table: rule %s: window: %w", fr.Name, err)
			}
			p.Window = d
		}
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("rate limit table: %w", err)
	}
	return t, nil
}

// LoadTable returns DefaultTable with the overrides of the file named by
// CLOUDPHONE_RATE_LIMITS in src, if any. A file that is missing or does not
// parse is an error, so a bad file stops the process at start.
func LoadTable(src config.Source) (Table, error) {
	path, ok := src.Lookup(EnvTable)
	if !ok {
		return DefaultTable(), nil
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvTable, err)
	}
	t, err := ParseTable(doc, DefaultTable())
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", EnvTable, path, err)
	}
	return t, nil
}

// MarshalJSON writes a policy in the file format (window as a Go duration).
func (p Policy) MarshalJSON() ([]byte, error) {
	return json.Marshal(fileRule{Name: p.Name, Scope: p.Scope, Route: p.Route, Limit: p.Limit, Window: p.Window.String(),
		FailClosed: &p.FailClosed})
}
