package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
)

// An APK uploaded through the running platform is parsed, listed, readable
// by its owner only, downloadable by its digest, and gone after delete.
func TestAppsUploadListAndDeleteThroughThePlatform(t *testing.T) {
	t.Parallel()
	apk := apptest.Build(t, apptest.Spec{Package: "org.example.e2e", VersionCode: 4, VersionName: "4.0", Label: "E2E"})
	want := apptest.DumpBadging(t, apk)
	p := start(t, newEnv(t), &subscriber{})
	register(t, p.URL(), "appy")
	register(t, p.URL(), "other")
	token := login(t, p.URL(), "appy", "correct horse battery")
	otherToken := login(t, p.URL(), "other", "correct horse battery")

	status, body := apptest.Upload(t, p.URL(), token, apk)
	var up struct{ App app.App }
	if err := json.Unmarshal(body, &up); status != http.StatusCreated || err != nil {
		t.Fatalf("upload = %d %s", status, body)
	}
	data, _ := os.ReadFile(apk)
	sum := sha256.Sum256(data)
	if up.App.Package != want.Package || up.App.VersionCode != want.VersionCode || up.App.Label != want.Label ||
		up.App.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("uploaded %+v, aapt says %+v", up.App, want)
	}
	if status, body := apptest.Upload(t, p.URL(), token, apk); status != http.StatusConflict {
		t.Fatalf("the same package and version again = %d %s", status, body)
	}

	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	var page app.Page
	if s := call(t, "GET", p.URL()+"/api/v1/apps", nil, &page, auth(token)...); s != http.StatusOK || len(page.Apps) != 1 {
		t.Fatalf("list = %d %+v", s, page)
	}
	if s := call(t, "GET", p.URL()+"/api/v1/apps/"+up.App.ID, nil, nil, auth(otherToken)...); s != http.StatusNotFound {
		t.Fatalf("another user's GET = %d", s)
	}
	if s := call(t, "DELETE", p.URL()+"/api/v1/apps/"+up.App.ID, nil, nil, auth(otherToken)...); s != http.StatusNotFound {
		t.Fatalf("another user's DELETE = %d", s)
	}
	if s := call(t, "DELETE", p.URL()+"/api/v1/apps/"+up.App.ID, nil, nil, auth(token)...); s != http.StatusNoContent {
		t.Fatalf("DELETE = %d", s)
	}
	if s := call(t, "GET", p.URL()+"/api/v1/apps/"+up.App.ID, nil, nil, auth(token)...); s != http.StatusNotFound {
		t.Fatalf("GET after DELETE = %d", s)
	}
}
