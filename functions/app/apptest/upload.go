package apptest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/appapps"
)

// Upload posts the APK at path to app-apps' upload route on base (the
// platform's edge, or any server with app-apps' routes) as the bearer of
// token, framed as a browser or curl sends a form with one file, and returns
// the answer's status and body.
func Upload(t testing.TB, base, token, path string) (int, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="`+appapps.FileField+`"; filename="app.apk"`)
	h.Set("Content-Type", "application/vnd.android.package-archive")
	w, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(data)
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, base+strings.TrimPrefix(appapps.RouteUpload, http.MethodPost+" "), &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// Uploaded is Upload of an APK that must be stored (201 Created): it returns
// the app, and fails t otherwise.
func Uploaded(t testing.TB, base, token, path string) app.App {
	t.Helper()
	status, body := Upload(t, base, token, path)
	var up appapps.One
	if err := json.Unmarshal(body, &up); status != http.StatusCreated || err != nil {
		t.Fatalf("upload %s = %d %s", path, status, body)
	}
	return up.App
}
