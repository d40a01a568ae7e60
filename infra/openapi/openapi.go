// Package openapi renders the platform's API reference, an OpenAPI 3.1
// document, from the operations the functions declare (function.Operation):
// routes, access, query parameters and the Go types of request and response
// bodies, with the types' and fields' doc comments as descriptions. It is
// rendered by make manifests beside the deployment descriptors and checked
// for drift the same way, so the reference changes only with the code.
package openapi

import (
	"encoding"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

// Options tune Render.
type Options struct {
	// Comments gives the doc comment of a type (field "") or of one of its
	// fields; nil renders no descriptions. See SourceComments.
	Comments func(t reflect.Type, field string) string
}

// Render builds the document of every public route (/api/v1/...) of the
// HTTP functions of specs. A public route without an operation is an error:
// the reference would be incomplete.
func Render(specs []function.Spec, opts Options) ([]byte, error) {
	g := &generator{comments: opts.Comments, schemas: map[string]any{}, names: map[reflect.Type]string{}, owner: map[string]reflect.Type{}}
	if g.comments == nil {
		g.comments = func(reflect.Type, string) string { return "" }
	}
	paths := map[string]map[string]any{}
	ids := map[string]string{}
	var tags []string
	for _, s := range specs {
		for _, route := range s.Routes {
			method, path := function.SplitRoute(route)
			if !strings.HasPrefix(path, "/api/v1/") {
				continue
			}
			i := slices.IndexFunc(s.API, func(op function.Operation) bool { return op.Route == route })
			if i < 0 {
				return nil, fmt.Errorf("function %s: route %q has no operation", s.Name, route)
			}
			op := s.API[i]
			if op.Access == function.AccessService {
				continue
			}
			tmpl := template(path)
			id := operationID(method, tmpl)
			if other, dup := ids[id]; dup {
				return nil, fmt.Errorf("routes %q and %q make the same operation id %s", other, route, id)
			}
			ids[id] = route
			if paths[tmpl] == nil {
				paths[tmpl] = map[string]any{}
			}
			o, err := g.operation(s, op, method, tmpl, id)
			if err != nil {
				return nil, fmt.Errorf("function %s: %s: %w", s.Name, route, err)
			}
			paths[tmpl][strings.ToLower(method)] = o
			if !slices.Contains(tags, s.Context) {
				tags = append(tags, s.Context)
			}
		}
	}
	errorBody := g.schema(reflect.TypeOf(apierr.Body{}), false)
	var tagList []any
	for _, t := range tags {
		tagList = append(tagList, map[string]any{"name": t, "description": tagDocs[t]})
	}
	doc := map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": map[string]any{
			"title":   "cloudphone API",
			"version": "v1",
			"summary": "Rent Android phones that run as containers, install apps on them, pay for what you use.",
			"description": "Every route answers JSON. An error answers {\"error\": {\"code\", \"message\"}} with a stable code " +
				"(invalid, unauthorized, forbidden, not_found, conflict, quota_exceeded, rate_limited, too_large, " +
				"unsupported_media_type, unavailable, internal, ...). Sign in with POST /api/v1/auth/login and send the " +
				"access token as `Authorization: Bearer <token>`.",
			"license": map[string]any{"name": "Apache-2.0", "identifier": "Apache-2.0"},
		},
		"servers": []any{map[string]any{"url": "/"}},
		"tags":    tagList,
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "The access token of POST /api/v1/auth/login or /refresh."},
				"paymentSignature": map[string]any{"type": "apiKey", "in": "header", "name": webhooksig.Header,
					"description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of t + \".\" + the raw body, keyed with the secret file's raw bytes>; " +
						"several v1 values may be given while the secret rotates."},
			},
			"responses": map[string]any{
				"Error": map[string]any{
					"description": "The request failed; the code says why.",
					"content":     map[string]any{"application/json": map[string]any{"schema": errorBody}},
				},
			},
		},
	}
	if g.err != nil {
		return nil, g.err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// tagDocs describes each context's group of routes.
var tagDocs = map[string]string{
	"user":         "Accounts, sessions, quotas and the administration of users.",
	"billing":      "Plans, orders, the balance and its ledger, subscriptions, the payment webhook.",
	"device":       "Phones: create, run, stop and delete them, reach them over ADB, see their screen.",
	"app":          "APKs: upload, list and delete them, install them on phones.",
	"notification": "What the platform tells users: the in-app inbox, its live stream, preferences and webhooks.",
	"console":      "The web console and this reference.",
	"scheduler":    "Events no function could take (dead letters), for administrators.",
}

type generator struct {
	comments func(t reflect.Type, field string) string
	schemas  map[string]any
	names    map[reflect.Type]string // type → component name
	owner    map[string]reflect.Type // component name → type
	err      error
}

var pathParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// template turns a ServeMux pattern into an OpenAPI path template:
// "{entry...}" becomes "{entry}".
func template(path string) string { return pathParam.ReplaceAllString(path, "{$1}") }

// operationID names an operation after its method and the literal segments
// of its path: POST /api/v1/devices/{id}/start → postDevicesStart.
func operationID(method, tmpl string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(strings.TrimPrefix(tmpl, "/api/v1/"), "/") {
		if seg == "" || strings.HasPrefix(seg, "{") {
			continue
		}
		for _, word := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
			b.WriteString(strings.ToUpper(word[:1]) + word[1:])
		}
	}
	if strings.HasSuffix(tmpl, "}") {
		b.WriteString("ByID")
	}
	return b.String()
}

func (g *generator) operation(s function.Spec, op function.Operation, method, tmpl, id string) (map[string]any, error) {
	o := map[string]any{"operationId": id, "summary": op.Summary, "tags": []string{s.Context}}
	if op.Summary == "" {
		return nil, fmt.Errorf("no summary")
	}
	if op.Doc != "" {
		o["description"] = op.Doc
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(tmpl, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, name := range sortedKeys(op.Query) {
		params = append(params, map[string]any{"name": name, "in": "query", "description": op.Query[name], "schema": map[string]any{"type": "string"}})
	}
	for _, name := range sortedKeys(op.Header) {
		params = append(params, map[string]any{"name": name, "in": "header", "description": op.Header[name], "schema": map[string]any{"type": "string"}})
	}
	if params != nil {
		o["parameters"] = params
	}
	switch op.Access {
	case function.AccessUser, function.AccessAdmin:
		o["security"] = []any{map[string]any{"bearer": []string{}}}
		if op.Access == function.AccessAdmin {
			o["description"] = strings.TrimSpace(op.Doc + "\n\nAdministrators only (role admin); others get 403.")
		}
	case function.AccessSigned:
		o["security"] = []any{map[string]any{"paymentSignature": []string{}}}
	case function.AccessPublic, function.AccessTicketed:
		o["security"] = []any{}
	default:
		return nil, fmt.Errorf("access %q", op.Access)
	}
	if op.Request != nil {
		mt := op.RequestType
		if mt == "" {
			mt = "application/json"
		}
		schema, given := op.Request.(function.Schema)
		if !given {
			schema = g.schema(reflect.TypeOf(op.Request), true)
		}
		o["requestBody"] = map[string]any{"required": !op.BodyOptional,
			"content": map[string]any{mt: map[string]any{"schema": map[string]any(schema)}}}
	}
	status := op.Status
	if status == 0 {
		status = http.StatusOK
	}
	ok := map[string]any{"description": http.StatusText(status)}
	switch {
	case op.ResponseType != "":
		ok["content"] = map[string]any{op.ResponseType: map[string]any{}}
	case op.Response != nil:
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(op.Response), false)}}
	}
	responses := map[string]any{fmt.Sprint(status): ok, "default": map[string]any{"$ref": "#/components/responses/Error"}}
	for _, also := range op.AlsoStatus {
		again := map[string]any{"description": http.StatusText(also)}
		if c, has := ok["content"]; has {
			again["content"] = c
		}
		responses[fmt.Sprint(also)] = again
	}
	o["responses"] = responses
	return o, nil
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	durationType  = reflect.TypeFor[time.Duration]()
	rawType       = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()

	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

// nullable lets s also be null: what a nil pointer, slice or map marshals to.
func nullable(s map[string]any) map[string]any {
	if t, ok := s["type"].(string); ok {
		out := map[string]any{}
		for k, v := range s {
			out[k] = v
		}
		out["type"] = []string{t, "null"}
		return out
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

// schema describes t as JSON Schema (draft 2020-12, OpenAPI 3.1's dialect).
// Named structs become components, referenced. input marks a request body:
// its fields are documented but none is required, since the routes give
// missing fields defaults or say what is missing; components used both ways
// are kept apart.
func (g *generator) schema(t reflect.Type, input bool) map[string]any {
	if t.Kind() == reflect.Pointer {
		return nullable(g.schema(t.Elem(), input))
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	case t == rawType:
		return map[string]any{}
	case t.Implements(textMarshalerType) && !t.Implements(marshalerType):
		return map[string]any{"type": "string"}
	case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType):
		g.fail(fmt.Errorf("type %s marshals itself: describe it by hand", t))
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": []string{"string", "null"}, "contentEncoding": "base64"}
		}
		return nullable(map[string]any{"type": "array", "items": g.schema(t.Elem(), input)})
	case reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem(), input), "minItems": t.Len(), "maxItems": t.Len()}
	case reflect.Map:
		return nullable(map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem(), input)})
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t, input)
		}
		return ref(g.component(t, input))
	}
	g.fail(fmt.Errorf("type %s cannot be described", t))
	return map[string]any{}
}

// component names t's schema, adding it on first use.
func (g *generator) component(t reflect.Type, input bool) string {
	key := t
	name := componentName(t)
	if input {
		// A request type of the same name as a response type gets its own
		// component: it requires nothing.
		if _, ok := g.names[t]; ok || g.owner[name] != nil {
			name += "Input"
		}
		key = reflect.ArrayOf(0, t) // a distinct key for the input variant
		if n, ok := g.names[key]; ok {
			return n
		}
	} else if n, ok := g.names[t]; ok {
		return n
	}
	if other, taken := g.owner[name]; taken && other != key {
		g.fail(fmt.Errorf("types %s and %s both make the component %s", other, t, name))
		return name
	}
	g.names[key], g.owner[name] = name, key
	g.schemas[name] = map[string]any{} // placeholder: breaks recursion
	g.schemas[name] = g.object(t, input)
	return name
}

// componentName is t's package and type name: device.Device.
func componentName(t reflect.Type) string {
	pkg := t.PkgPath()
	pkg = pkg[strings.LastIndex(pkg, "/")+1:]
	return pkg + "." + t.Name()
}

// object describes a struct by its JSON fields, flattening embedded structs
// as encoding/json does.
func (g *generator) object(t reflect.Type, input bool) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, input, props, &required)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if t.Name() != "" {
		if doc := g.comments(t, ""); doc != "" {
			s["description"] = doc
		}
	}
	if len(required) > 0 {
		slices.Sort(required)
		s["required"] = required
	}
	return s
}

func (g *generator) fields(t reflect.Type, input bool, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && !hasTag {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, input, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		var s map[string]any
		if strings.Contains(","+opts+",", ",string,") {
			s = map[string]any{"type": "string"}
		} else {
			s = g.schema(f.Type, input)
		}
		if doc := g.comments(t, f.Name); doc != "" {
			if _, isRef := s["$ref"]; isRef {
				s = map[string]any{"allOf": []any{s}, "description": doc}
			} else {
				s = withDescription(s, doc)
			}
		}
		props[name] = s
		omit := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		if !omit && !input {
			*required = append(*required, name)
		}
	}
}

func withDescription(s map[string]any, doc string) map[string]any {
	out := map[string]any{"description": doc}
	for k, v := range s {
		if k == "description" {
			continue
		}
		out[k] = v
	}
	return out
}

func (g *generator) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
