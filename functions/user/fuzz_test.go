package user_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// FuzzDecodeRequests feeds arbitrary bodies to httpjson.Decode into every
// request type of the context and validates what decodes: no panic, and every
// refusal is an apierr.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice","email":"a@example.com","password":"0123456789"}`,
		`{"login":"alice","password":"x"}`, `{"refresh_token":"abc"}`, `{}`, `{"username":"\u0000"}`,
		`{"username":1}`, `[`, `{"a":{"b":[1,2,{"c":null}]}}`, `"\ud800"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		check := func(err error) {
			if err != nil && apierr.As(err) == nil {
				t.Fatalf("non-apierr error %v for %q", err, body)
			}
		}
		req := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			return r
		}
		var reg user.RegisterRequest
		if err := httpjson.Decode(req(), &reg); err == nil {
			check(reg.Validate())
		} else {
			check(err)
		}
		var login user.LoginRequest
		if err := httpjson.Decode(req(), &login); err == nil {
			check(login.Validate())
		} else {
			check(err)
		}
		var refresh user.RefreshRequest
		check(httpjson.Decode(req(), &refresh))
		var logout user.LogoutRequest
		check(httpjson.Decode(req(), &logout))
	})
}
