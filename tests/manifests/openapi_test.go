package manifests_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/infra/manifests"
	"github.com/cloudphone/cloudphone/shared/function"
)

func TestAPIReferencePassesOpenAPI31SchemaValidation(t *testing.T) {
	t.Parallel()
	doc, err := libopenapi.NewDocument(rendered(t)[manifests.APIFile])
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Fatalf("version %q", v)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		t.Fatalf("build the model: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s (%s)", e.Message, e.Reason, e.SpecPath)
		}
	}
}

// TestAPIReferenceNamesEveryPublicRoute compares the document with the
// routes the functions serve, so that a route added without an operation, or
// an operation left behind, cannot go unnoticed.
func TestAPIReferenceNamesEveryPublicRoute(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]struct {
			Summary  string         `json:"summary"`
			Security []any          `json:"security"`
			Resp     map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(rendered(t)[manifests.APIFile], &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, s := range catalog.All() {
		for _, route := range s.Routes {
			method, path := function.SplitRoute(route)
			if !strings.HasPrefix(path, "/api/v1/") {
				continue
			}
			key := strings.ToLower(method) + " " + strings.ReplaceAll(path, "...}", "}")
			want[key] = true
			op, ok := doc.Paths[strings.ReplaceAll(path, "...}", "}")][strings.ToLower(method)]
			switch {
			case !ok:
				t.Errorf("%s (function %s) is not in the reference", route, s.Name)
			case op.Summary == "" || op.Resp["default"] == nil || op.Security == nil:
				t.Errorf("%s: summary %q, default response %v, security %v", route, op.Summary, op.Resp["default"], op.Security)
			}
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !want[method+" "+path] {
				t.Errorf("the reference has %s %s, which no function serves", method, path)
			}
		}
	}
}
