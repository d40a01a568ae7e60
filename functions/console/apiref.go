package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cloudphone/cloudphone/shared/function"
)

// RouteAPIDocument serves the API reference as OpenAPI 3.1 JSON; the page
// /console/api shows the same document to people.
const RouteAPIDocument = "GET /api/v1/openapi.json"

// apiDocument is the embedded reference, rendered from the function catalog
// by make manifests.
const apiDocument = "openapi.json"

// API documents the console's one API route.
var API = []function.Operation{
	{Route: RouteAPIDocument, Access: function.AccessPublic, Summary: "This reference, as OpenAPI 3.1",
		Doc: "The same document, readable, is the console page /console/api.", ResponseType: "application/json"},
}

// The parts of the OpenAPI document the page shows.
type (
	openAPI struct {
		Info struct {
			Title, Summary, Description string
		}
		Tags []struct {
			Name, Description string
		}
		Paths      map[string]map[string]openOp
		Components struct {
			Schemas map[string]jsonSchema
		}
	}
	openOp struct {
		OperationID string `json:"operationId"`
		Summary     string
		Description string
		Tags        []string
		Security    []map[string][]string
		Parameters  []struct {
			Name, In, Description string
			Required              bool
		}
		RequestBody *struct {
			Required bool
			Content  map[string]struct{ Schema jsonSchema }
		} `json:"requestBody"`
		Responses map[string]struct {
			Ref     string `json:"$ref"`
			Content map[string]struct{ Schema jsonSchema }
		}
	}
	jsonSchema struct {
		Ref         string `json:"$ref"`
		Type        any
		Format      string
		Description string
		Items       *jsonSchema
		Properties  map[string]jsonSchema
		Required    []string
		AnyOf       []jsonSchema `json:"anyOf"`
		AllOf       []jsonSchema `json:"allOf"`
		Additional  any          `json:"additionalProperties"`
	}
)

// apiRef is what the page shows: the routes by context, then the types.
type apiRef struct {
	Title, Summary, Description string
	Groups                      []apiGroup
	Types                       []apiType
}

type apiGroup struct {
	Name, Description string
	Ops               []apiOp
}

type apiOp struct {
	ID, Method, Path, Summary, Description, Access string
	Params                                         []apiField
	Request, Response                              apiBody
	RequestNote                                    string
	Status                                         string
}

// apiBody is a request's or response's body: a type of the reference
// (linked) or a media type.
type apiBody struct {
	Type, Media string
}

type apiType struct {
	Name        string
	Description string
	Fields      []apiField
}

type apiField struct {
	Name, Type, Description string
	Link                    string // the type the field refers to, for a link
	Required                bool
}

// parseAPIRef reads the embedded document for the page.
func parseAPIRef(doc []byte) (*apiRef, error) {
	var d openAPI
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("the API reference: %w", err)
	}
	ref := &apiRef{Title: d.Info.Title, Summary: d.Info.Summary, Description: d.Info.Description}
	groups := map[string]*apiGroup{}
	for _, t := range d.Tags {
		ref.Groups = append(ref.Groups, apiGroup{Name: t.Name, Description: t.Description})
	}
	for i := range ref.Groups {
		groups[ref.Groups[i].Name] = &ref.Groups[i]
	}
	for _, path := range sortedKeys(d.Paths) {
		for _, method := range []string{"get", "post", "put", "patch", "delete"} {
			o, ok := d.Paths[path][method]
			if !ok || len(o.Tags) == 0 || groups[o.Tags[0]] == nil {
				continue
			}
			op := apiOp{ID: o.OperationID, Method: strings.ToUpper(method), Path: path, Summary: o.Summary, Description: o.Description, Access: "signed-in user"}
			switch {
			case o.Security != nil && len(o.Security) == 0:
				op.Access = "anyone"
			case len(o.Security) > 0 && o.Security[0]["paymentSignature"] != nil:
				op.Access = "the payment provider (signed)"
			case strings.Contains(o.Description, "Administrators only"):
				op.Access = "administrators"
			}
			for _, p := range o.Parameters {
				op.Params = append(op.Params, apiField{Name: p.Name, Type: p.In, Description: p.Description, Required: p.Required})
			}
			if o.RequestBody != nil {
				for _, mt := range sortedKeys(o.RequestBody.Content) {
					op.Request = body(mt, o.RequestBody.Content[mt].Schema)
				}
				if !o.RequestBody.Required {
					op.RequestNote = "optional"
				}
			}
			for _, status := range sortedKeys(o.Responses) {
				if status == "default" {
					continue
				}
				op.Status = status
				for _, mt := range sortedKeys(o.Responses[status].Content) {
					op.Response = body(mt, o.Responses[status].Content[mt].Schema)
				}
			}
			groups[o.Tags[0]].Ops = append(groups[o.Tags[0]].Ops, op)
		}
	}
	for _, name := range sortedKeys(d.Components.Schemas) {
		s := d.Components.Schemas[name]
		t := apiType{Name: name, Description: s.Description}
		for _, f := range sortedKeys(s.Properties) {
			fs := s.Properties[f]
			t.Fields = append(t.Fields, apiField{Name: f, Type: describe(fs), Link: typeName(fs), Description: fieldDoc(fs),
				Required: slices.Contains(s.Required, f)})
		}
		ref.Types = append(ref.Types, t)
	}
	return ref, nil
}

// body names a JSON body by its type and any other by its media type.
func body(media string, s jsonSchema) apiBody {
	if name := typeName(s); name != "" && media == "application/json" {
		return apiBody{Type: name}
	}
	return apiBody{Media: media}
}

// typeName is the component a schema refers to, directly or as the items of
// an array, or "".
func typeName(s jsonSchema) string {
	switch {
	case s.Ref != "":
		return strings.TrimPrefix(s.Ref, "#/components/schemas/")
	case s.Items != nil:
		return typeName(*s.Items)
	case len(s.AllOf) == 1:
		return typeName(s.AllOf[0])
	case len(s.AnyOf) > 0:
		return typeName(s.AnyOf[0])
	}
	return ""
}

// describe says a schema's type in a few words: "array of device.Device",
// "string (date-time) or null".
func describe(s jsonSchema) string {
	if s.Ref != "" {
		return typeName(s)
	}
	if len(s.AllOf) == 1 {
		return describe(s.AllOf[0])
	}
	if len(s.AnyOf) > 0 {
		var parts []string
		for _, a := range s.AnyOf {
			parts = append(parts, describe(a))
		}
		return strings.Join(parts, " or ")
	}
	var types []string
	switch t := s.Type.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			types = append(types, fmt.Sprint(x))
		}
	}
	if len(types) == 0 {
		return "any"
	}
	for i, t := range types {
		switch {
		case t == "array" && s.Items != nil:
			types[i] = "array of " + describe(*s.Items)
		case t == "object" && s.Additional != nil && s.Additional != false:
			if inner, ok := s.Additional.(map[string]any); ok && len(inner) > 0 {
				b, _ := json.Marshal(inner)
				var a jsonSchema
				_ = json.Unmarshal(b, &a)
				types[i] = "map of " + describe(a)
			}
		case t == "string" && s.Format != "":
			types[i] = "string (" + s.Format + ")"
		}
	}
	return strings.Join(types, " or ")
}

func fieldDoc(s jsonSchema) string {
	if s.Description != "" {
		return s.Description
	}
	if len(s.AllOf) == 1 {
		return s.AllOf[0].Description
	}
	return ""
}

// serveAPIDocument answers the embedded document as JSON.
func (f *Function) serveAPIDocument(w http.ResponseWriter, r *http.Request) {
	a := f.assets[apiDocument]
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", a.etag)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(a.body)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
