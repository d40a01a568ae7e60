package local

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestEventsAreAcceptedFromThisMachineOnly(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	h := loopbackOnly(ok, logging.Discard())
	for addr, want := range map[string]int{
		"127.0.0.1:40000":          http.StatusAccepted,
		"[::1]:40000":              http.StatusAccepted,
		"[::ffff:127.0.0.1]:40000": http.StatusAccepted,
		"203.0.113.5:40000":        http.StatusForbidden,
		"10.0.0.8:40000":           http.StatusForbidden,
		"garbage":                  http.StatusForbidden,
	} {
		r := httptest.NewRequest("POST", "/broker/cloudphone", nil)
		r.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("from %s: %d, want %d", addr, rec.Code, want)
		}
	}
}
