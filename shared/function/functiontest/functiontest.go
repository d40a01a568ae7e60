// Package functiontest helps tests call an HTTP function's Handle directly,
// without a server.
package functiontest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
)

// Call sends method path through handle (a function's Handle) with body as
// JSON (none when nil) and headers (name, value, ...), as the bearer of token
// (none when empty), and returns the answer.
func Call(handle func(http.ResponseWriter, *http.Request), method, path, token string, body any, headers ...string) *httptest.ResponseRecorder {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	r := httptest.NewRequest(method, path, bytes.NewReader(raw))
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	handle(w, r)
	return w
}
