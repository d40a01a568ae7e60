package internalapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/internalapi"
)

func TestCallSendsJSONAndDecodesA2xxAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.EscapedPath() != "/internal/v1/x/a%2Fb" ||
			r.Header.Get("Content-Type") != "application/json" || string(b) != `{"n":1}` {
			t.Errorf("got %s %s %q %s", r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), b)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"answer":42}`))
	}))
	defer srv.Close()
	c, err := internalapi.New("X_URL", srv.URL+"/", srv.Client(), "the x service")
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Answer int }
	if err := c.Call(context.Background(), "POST", "/internal/v1/x/a%2Fb", map[string]int{"n": 1}, &out, "x"); err != nil || out.Answer != 42 {
		t.Fatalf("err %v, answer %d", err, out.Answer)
	}
}

func TestARefusalCarriesStatusAndCodeAndAnUnreachableServiceIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apierr.Write(w, r, nil, apierr.New(apierr.QuotaExceeded, "no more phones"))
	}))
	c, err := internalapi.New("X_URL", srv.URL, srv.Client(), "the x service")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Call(context.Background(), "GET", "/internal/v1/x", nil, nil, "x of alice")
	var r *internalapi.Refusal
	if !errors.As(err, &r) || r.Status != http.StatusForbidden || r.Code != apierr.QuotaExceeded || r.Message != "no more phones" {
		t.Fatalf("refusal = %#v (%v)", r, err)
	}
	srv.Close()
	err = c.Call(context.Background(), "GET", "/internal/v1/x", nil, nil, "x of alice")
	if !apierr.Is(err, apierr.Unavailable) {
		t.Fatalf("closed server: %v", err)
	}
}

func TestNewRefusesABaseURLThatIsNotHTTPAndANilClient(t *testing.T) {
	for _, base := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := internalapi.New("X_URL", base, http.DefaultClient, "x"); err == nil {
			t.Errorf("%q accepted", base)
		}
	}
	if _, err := internalapi.New("X_URL", "http://x", nil, "x"); err == nil {
		t.Error("a nil client accepted")
	}
}
