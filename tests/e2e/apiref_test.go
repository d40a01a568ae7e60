package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/cloudphone/cloudphone/infra/manifests"
)

// The API reference checks every answer the tests get from /api/v1/: a
// response whose status or body the reference does not describe fails the
// test that got it, so the reference cannot drift from what the platform
// really answers.
var (
	apiRefOnce sync.Once
	apiRef     validator.Validator
	apiRefErr  error
	apiRefMu   sync.Mutex // the validator's schema cache is not safe for concurrent use
)

func apiReference() (validator.Validator, error) {
	apiRefOnce.Do(func() {
		b, err := os.ReadFile("../../" + manifests.APIFile)
		if err != nil {
			apiRefErr = err
			return
		}
		doc, err := libopenapi.NewDocument(b)
		if err != nil {
			apiRefErr = err
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			apiRefErr = errs[0]
			return
		}
		apiRef = v
	})
	return apiRef, apiRefErr
}

// checkAgainstReference fails t when resp (with body raw) to req is not what
// the API reference says the route answers.
func checkAgainstReference(t testing.TB, req *http.Request, resp *http.Response, raw []byte) {
	t.Helper()
	if !strings.HasPrefix(req.URL.Path, "/api/v1/") || resp.StatusCode == http.StatusNotModified {
		return
	}
	v, err := apiReference()
	if err != nil {
		t.Fatalf("the API reference: %v", err)
	}
	copied := *resp
	copied.Body = io.NopCloser(bytes.NewReader(raw))
	apiRefMu.Lock()
	ok, errs := v.ValidateHttpResponse(req, &copied)
	apiRefMu.Unlock()
	if !ok {
		for _, e := range errs {
			t.Errorf("%s %s answered %d %.300s, which the API reference does not describe: %s (%s)", req.Method, req.URL.Path, resp.StatusCode, raw, e.Message, e.Reason)
			for _, s := range e.SchemaValidationErrors {
				t.Errorf("  %s: %s", s.FieldPath, s.Reason)
			}
		}
	}
}
