package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/openfaas/faas-provider/types"

	"github.com/cloudphone/cloudphone/assembly/host"
	"github.com/cloudphone/cloudphone/infra/local/gateway"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/process"
)

type hello struct{}

func (hello) Handle(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello")) }

type ticker struct{}

func (ticker) Handle(context.Context, event.Event) (*event.Event, error) { return nil, nil }

// setup serves two functions as the local platform does (the gateway API
// beside the host) on a real listener.
func setup(t *testing.T) *httptest.Server {
	t.Helper()
	res, err := process.New(config.FromMap(map[string]string{}), logging.Discard(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Close() })
	entries := []function.Entry{
		function.HTTPEntry(function.Spec{Name: "hello", Context: "user", Kind: function.KindHTTP, Routes: []string{"GET /internal/v1/hello"}},
			func(context.Context, *process.Resources) (hello, error) { return hello{}, nil }),
		function.HTTPEntry(function.Spec{Name: "pair", Context: "user", Kind: function.KindHTTP, Routes: []string{"GET /internal/v1/a", "GET /internal/v1/b"}},
			func(context.Context, *process.Resources) (hello, error) { return hello{}, nil }),
		function.EventEntry(function.Spec{Name: "ticker", Context: "billing", Kind: function.KindEvent, Consumes: []string{"cloudphone.billing.tick.requested"}, Schedule: "* * * * *"},
			func(context.Context, *process.Resources) (ticker, error) { return ticker{}, nil }),
	}
	h, err := host.NewHost(res, entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	gateway.New(h, "test", logging.Discard()).Mount(mux)
	mux.Handle("/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func TestFaasCliReadsTheFunctionsAsFromAGateway(t *testing.T) {
	t.Parallel()
	srv := setup(t)

	var list []types.FunctionStatus
	if code := getJSON(t, srv.URL+"/system/functions", &list); code != 200 || len(list) != 3 {
		t.Fatalf("GET /system/functions: %d %+v", code, list)
	}
	for _, f := range list {
		if f.Namespace != gateway.Namespace || f.Replicas != 1 || f.AvailableReplicas != 1 || f.Labels == nil {
			t.Errorf("function %+v: want namespace %s and one available replica", f, gateway.Namespace)
		}
	}
	if code := getJSON(t, srv.URL+"/system/functions?namespace=elsewhere", nil); code != 404 {
		t.Errorf("another namespace: %d, want 404", code)
	}

	var one types.FunctionStatus
	if code := getJSON(t, srv.URL+"/system/function/ticker?namespace="+gateway.Namespace, &one); code != 200 ||
		one.Name != "ticker" || (*one.Annotations)["schedule"] != "* * * * *" {
		t.Errorf("describe ticker: %d %+v", code, one)
	}
	if code := getJSON(t, srv.URL+"/system/function/nobody", nil); code != 404 {
		t.Errorf("describe an unknown function: %d, want 404", code)
	}

	var info types.ProviderInfo
	if code := getJSON(t, srv.URL+"/system/info", &info); code != 200 || info.Name == "" || info.Version == nil || info.Version.Release != "test" {
		t.Errorf("info: %d %+v", code, info)
	}
	if code := getJSON(t, srv.URL+"/healthz", nil); code != 200 {
		t.Errorf("healthz: %d", code)
	}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/system/functions", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("deploy: %d, want 405", resp.StatusCode)
	}
}

func TestFunctionsAnswerAtTheirNamespacedPathAndHealthPaths(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	for path, want := range map[string]int{
		"/function/hello":                               200, // one route: / is that route
		"/function/hello.openfaas-fn":                   200, // faas-cli invoke's path
		"/function/hello.openfaas-fn/internal/v1/hello": 200,
		"/function/hello/_/health":                      200,
		"/function/ticker.openfaas-fn/_/ready":          200,
		"/function/hello.elsewhere":                     404,
		"/function/pair":                                404, // two routes: / is neither
		"/function/pair/internal/v1/b":                  200,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
}
