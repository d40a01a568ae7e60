package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/console"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func get(t *testing.T, f *console.Function, path string, header ...string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.Handle(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Result(), string(b)
}

var allRoutes = []string{"GET /api/v1/devices/{id}/screenshot", "GET /api/v1/apps", "GET /api/v1/notifications", "GET /api/v1/admin/mail"}

func TestPartsWhoseAPIIsMissingAreLeftOut(t *testing.T) {
	t.Parallel()
	f := console.New(logging.Discard(), console.Options{Routes: []string{"GET /api/v1/devices"}})
	_, home := get(t, f, "/console/")
	if strings.Contains(home, `href="/console/apps"`) || strings.Contains(home, `href="/console/notifications"`) || strings.Contains(home, `id="recent"`) {
		t.Error("the home page offers apps or notifications that the platform does not serve")
	}
	if resp, _ := get(t, f, "/console/apps"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /console/apps without the apps API = %d, want 404", resp.StatusCode)
	}
	if _, phone := get(t, f, "/console/phones/x"); strings.Contains(phone, `id="screen"`) {
		t.Error("the phone page shows a screen without the ADB API")
	}
	_, full := get(t, console.New(logging.Discard(), console.Options{Routes: allRoutes}), "/console/")
	if !strings.Contains(full, `href="/console/apps"`) || !strings.Contains(full, `data-features="adb apps notifications mail"`) {
		t.Error("the home page leaves out parts whose API the platform serves")
	}
}

func TestRootRedirectsToConsole(t *testing.T) {
	t.Parallel()
	f := console.New(logging.Discard(), console.Options{Routes: allRoutes})
	for _, p := range []string{"/", "/console"} {
		resp, _ := get(t, f, p)
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/console/" {
			t.Errorf("GET %s = %d Location %q, want a redirect to /console/", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// scriptTag is every script element with its content; handlerOrStyle an
// inline event handler or style attribute, or a style element.
var (
	scriptTag      = regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`)
	handlerOrStyle = regexp.MustCompile(`\son[a-z]+=|\sstyle=|<style`)
)

func inline(body string) string {
	for _, m := range scriptTag.FindAllStringSubmatch(body, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			return m[0]
		}
	}
	return handlerOrStyle.FindString(body)
}

func TestEveryPageHasTheStrictPolicyAndNoInlineScriptOrStyle(t *testing.T) {
	t.Parallel()
	f := console.New(logging.Discard(), console.Options{Routes: allRoutes})
	for _, p := range []string{"/console/", "/console/login", "/console/signup", "/console/plans", "/console/phones",
		"/console/phones/3f0c6a9e-1", "/console/apps", "/console/notifications", "/console/admin"} {
		resp, body := get(t, f, p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, resp.StatusCode)
			continue
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self' and nothing unsafe", p, csp)
		}
		if m := inline(body); m != "" {
			t.Errorf("GET %s: inline script or style %q in the page", p, m)
		}
		if !strings.Contains(body, `<script src="/console/assets/app.js?v=`) {
			t.Errorf("GET %s: the page does not load app.js", p)
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("GET %s: the page names another origin", p)
		}
	}
}

func TestPhonePageCarriesItsIDEscaped(t *testing.T) {
	t.Parallel()
	f := console.New(logging.Discard(), console.Options{Routes: allRoutes})
	_, body := get(t, f, `/console/phones/a"b<c`)
	if strings.Contains(body, `a"b<c`) || !strings.Contains(body, `data-phone="a&#34;b&lt;c"`) {
		t.Errorf("phone id not escaped in the page: %s", body[:min(len(body), 600)])
	}
}

func TestUnknownPageIs404AndUnknownAssetIs404(t *testing.T) {
	t.Parallel()
	f := console.New(logging.Discard(), console.Options{Routes: allRoutes})
	if resp, _ := get(t, f, "/console/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /console/nope = %d, want 404", resp.StatusCode)
	}
	if resp, _ := get(t, f, "/console/assets/nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /console/assets/nope.js = %d, want 404", resp.StatusCode)
	}
}

func TestAssetsAreServedWithTypesAndRevalidate(t *testing.T) {
	t.Parallel()
	f := console.New(logging.Discard(), console.Options{Routes: allRoutes})
	resp, body := get(t, f, "/console/assets/app.js")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(body, "use strict") {
		t.Fatalf("GET app.js = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("an unversioned asset is cached: %q", resp.Header.Get("Cache-Control"))
	}
	again, _ := get(t, f, "/console/assets/app.js", "If-None-Match", resp.Header.Get("ETag"))
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag = %d, want 304", again.StatusCode)
	}
	css, _ := get(t, f, "/console/assets/app.css")
	if !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Errorf("app.css Content-Type %q", css.Header.Get("Content-Type"))
	}
	_, page := get(t, f, "/console/")
	v := regexp.MustCompile(`app\.css\?v=([0-9a-f]+)`).FindStringSubmatch(page)
	if v == nil {
		t.Fatal("no versioned asset URL in the page")
	}
	versioned, _ := get(t, f, "/console/assets/app.css?v="+v[1])
	if !strings.Contains(versioned.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("a versioned asset is not cached for good: %q", versioned.Header.Get("Cache-Control"))
	}
}

func TestAPIDocumentIsServedAsJSONAndShownAsAPage(t *testing.T) {
	f := console.New(logging.Discard(), console.Options{})
	resp, body := get(t, f, "/api/v1/openapi.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("document: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.OpenAPI != "3.1.0" || doc.Paths["/api/v1/devices"]["post"] == nil {
		t.Fatalf("document: %v, openapi %q, %d paths", err, doc.OpenAPI, len(doc.Paths))
	}
	again, _ := get(t, f, "/api/v1/openapi.json", "If-None-Match", resp.Header.Get("ETag"))
	if again.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d", again.StatusCode)
	}

	resp, page := get(t, f, "/console/api")
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	for _, want := range []string{`data-route="POST /api/v1/devices"`, `id="type-device.Device"`, `href="#type-device.CreateRequest"`, "Rent a phone"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}
