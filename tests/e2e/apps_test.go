package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"testing"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
)

// uploadAPK posts the APK at path to /api/v1/apps through the platform's edge.
func uploadAPK(t testing.TB, base, token, path string) (int, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="app.apk"`)
	h.Set("Content-Type", "application/vnd.android.package-archive")
	w, _ := mw.CreatePart(h)
	_, _ = w.Write(data)
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/apps", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

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

	status, body := uploadAPK(t, p.URL(), token, apk)
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
	if status, body := uploadAPK(t, p.URL(), token, apk); status != http.StatusConflict {
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
