package httpjson_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

type request struct {
	Username string `json:"username"`
	Count    int    `json:"count"`
	Tags     []string
}

func post(ct, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

func TestDecodeAcceptsOneKnownJSONObject(t *testing.T) {
	t.Parallel()
	for name, ct := range map[string]string{"plain": "application/json", "utf-8 charset": "application/json; charset=UTF-8"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got request
			if err := httpjson.Decode(post(ct, ` {"username":"bob","count":3} `+"\n"), &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got.Username != "bob" || got.Count != 3 {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestDecodeRefusesWhatTheRulesForbid(t *testing.T) {
	t.Parallel()
	big := `{"username":"` + strings.Repeat("a", httpjson.MaxBody) + `"}`
	cases := map[string]struct {
		ct, body string
		code     apierr.Code
		msg      string
	}{
		"no content type":      {"", `{}`, apierr.UnsupportedMediaType, "application/json"},
		"text/plain":           {"text/plain", `{}`, apierr.UnsupportedMediaType, "application/json"},
		"form":                 {"application/x-www-form-urlencoded", `a=b`, apierr.UnsupportedMediaType, "application/json"},
		"latin-1 charset":      {"application/json; charset=latin1", `{}`, apierr.UnsupportedMediaType, "UTF-8"},
		"over 1 MiB":           {"application/json", big, apierr.TooLarge, "larger than"},
		"empty":                {"application/json", ``, apierr.Invalid, "empty"},
		"malformed":            {"application/json", `{"username":`, apierr.Invalid, "not valid JSON"},
		"syntax error":         {"application/json", `{"username" "x"}`, apierr.Invalid, "not valid JSON"},
		"unknown field":        {"application/json", `{"username":"a","admin":true}`, apierr.Invalid, `unknown field "admin"`},
		"wrong type names it":  {"application/json", `{"count":"three"}`, apierr.Invalid, `field "count" must be a number`},
		"array not object":     {"application/json", `[1,2]`, apierr.Invalid, "request body must be an object"},
		"two values":           {"application/json", `{}{}`, apierr.Invalid, "single JSON value"},
		"trailing garbage":     {"application/json", `{} x`, apierr.Invalid, "single JSON value"},
		"string for an object": {"application/json", `"hi"`, apierr.Invalid, "must be"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var dst request
			err := httpjson.Decode(post(tc.ct, tc.body), &dst)
			if !apierr.Is(err, tc.code) {
				t.Fatalf("Decode = %v, want %s", err, tc.code)
			}
			if !strings.Contains(apierr.As(err).Message, tc.msg) {
				t.Fatalf("message %q does not mention %q", apierr.As(err).Message, tc.msg)
			}
		})
	}
}

func TestWriteSetsJSONContentTypeAndStatus(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	httpjson.Write(w, http.StatusCreated, map[string]string{"id": "1"})
	if w.Code != http.StatusCreated || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != `{"id":"1"}`+"\n" {
		t.Fatalf("got %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	w = httptest.NewRecorder()
	httpjson.Write(w, http.StatusNoContent, nil)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"username":"a","count":1,"Tags":["x"]}`, `[`, `{"count":1e400}`, `{"a":1}`, `null`, "\xff"} {
		f.Add("application/json", s)
	}
	f.Fuzz(func(t *testing.T, ct, body string) {
		var dst request
		err := httpjson.Decode(post(ct, body), &dst)
		if err != nil && apierr.As(err) == nil {
			t.Fatalf("Decode returned a non-apierr error: %v", err)
		}
	})
}

func TestLimitIsZeroWhenAbsentAndRefusesWhatIsNotOneToMax(t *testing.T) {
	for query, want := range map[string]int{"": 0, "?limit=": 0, "?limit=1": 1, "?limit=100": 100, "?cursor=x&limit=7": 7} {
		n, err := httpjson.Limit(httptest.NewRequest("GET", "/x"+query, nil), 100)
		if err != nil || n != want {
			t.Errorf("%q: %d, %v; want %d", query, n, err, want)
		}
	}
	for _, query := range []string{"?limit=0", "?limit=101", "?limit=-1", "?limit=ten"} {
		_, err := httpjson.Limit(httptest.NewRequest("GET", "/x"+query, nil), 100)
		if !apierr.Is(err, apierr.Invalid) || !strings.Contains(err.Error(), "1 to 100") {
			t.Errorf("%q: %v, want invalid naming 1 to 100", query, err)
		}
	}
}
