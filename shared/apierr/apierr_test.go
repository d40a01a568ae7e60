package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestWriteMapsErrorsToStableCodesWithoutLeakingCauses(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name       string
		err        error
		status     int
		code       Code
		retryAfter bool
	}{
		{"coded error", New(NotFound, "no device %s", "d1"), 404, NotFound, false},
		{"wrapped coded error", fmt.Errorf("load: %w", New(Conflict, "busy")), 409, Conflict, false},
		{"plain error is internal", errors.New("secret detail: password=hunter2"), 500, Internal, false},
		{"unreachable server is unavailable", fmt.Errorf("query: %w", refused), 503, Unavailable, true},
		{"postgres shutting down is unavailable", &pgconn.PgError{Code: "57P01"}, 503, Unavailable, true},
		{"postgres constraint error stays internal", &pgconn.PgError{Code: "23505"}, 500, Internal, false},
		{"rate limited keeps its retry hint", &Error{Code: RateLimited, Message: "slow down", RetryAfter: 1500e6}, 429, RateLimited, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			Write(rec, httptest.NewRequest("GET", "/", nil), nil, c.err)
			var body Body
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if rec.Code != c.status || body.Error.Code != c.code {
				t.Fatalf("got %d %q, want %d %q", rec.Code, body.Error.Code, c.status, c.code)
			}
			if strings.Contains(rec.Body.String(), "hunter2") || strings.Contains(rec.Body.String(), "refused") {
				t.Fatalf("the cause leaked: %s", rec.Body.String())
			}
			if got := rec.Header().Get("Retry-After") != ""; got != c.retryAfter {
				t.Fatalf("Retry-After present = %v, want %v", got, c.retryAfter)
			}
			if rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", rec.Header().Get("Content-Type"))
			}
		})
	}
	if Code("nonsense").Status() != http.StatusInternalServerError {
		t.Error("an unknown code must map to 500")
	}
}
