package appapps_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/appapps"
	"github.com/cloudphone/cloudphone/functions/app/appevents"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/infra/local/services"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/objectstore"
	"github.com/cloudphone/cloudphone/shared/objectstore/objectstoretest"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

func TestMain(m *testing.M) {
	services.RunS3Gateway() // TestUploadWhileTheStoreIsDownAnswers503 starts one of its own
	os.Exit(m.Run())
}

type env struct {
	svc    *app.Service
	fn     *appapps.Function
	pool   *pgxpool.Pool
	store  *objectstore.Store
	issuer *auth.Issuer
}

func setup(t *testing.T, mutate ...func(*app.Config)) env {
	t.Helper()
	return setupOn(t, objectstoretest.Config(t), mutate...)
}

func setupOn(t *testing.T, storeCfg objectstore.Config, mutate ...func(*app.Config)) env {
	t.Helper()
	pool := dbtest.Database(t, outbox.Migrations, inbox.Migrations, app.Migrations)
	privS, pubS, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := auth.ParsePrivateKey(privS)
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Config{TokenPublicKey: pubS, MaxAPKBytes: 200 << 20, DownloadTTL: 15 * time.Minute, Store: storeCfg}
	for _, m := range mutate {
		m(&cfg)
	}
	store, err := objectstore.New(cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.Open(pool, store, dbtest.Redis(t), cfg, logging.Discard())
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	return env{svc: svc, fn: appapps.New(svc, cfg.MaxAPKBytes, logging.Discard()), pool: pool, store: store,
		issuer: auth.NewIssuer(priv, time.Hour)}
}

// token returns an access token of a new user with the usual permissions.
func (e env) token(t *testing.T) (userID, token string) {
	t.Helper()
	userID = events.NewID()
	tok, _, err := e.issuer.Issue(auth.Principal{UserID: userID, Roles: []string{"user"},
		Permissions: []string{app.PermUpload, app.PermRead, app.PermDelete}})
	if err != nil {
		t.Fatal(err)
	}
	return userID, tok
}

// multipartBody returns a body whose "file" part holds data with partType.
func multipartBody(t *testing.T, filename, partType string, data []byte) (body []byte, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("note", "ignored")
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+filename+`"`)
	if partType != "" {
		h.Set("Content-Type", partType)
	}
	w, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(data)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

type answer struct {
	status int
	body   []byte
}

func (a answer) code() string {
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &b)
	return b.Error.Code
}

func (a answer) app(t *testing.T) app.App {
	t.Helper()
	var b struct{ App app.App }
	if err := json.Unmarshal(a.body, &b); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
	return b.App
}

func (e env) do(t *testing.T, token string, r *http.Request) answer {
	t.Helper()
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.fn.Handle(w, r)
	return answer{w.Code, w.Body.Bytes()}
}

func (e env) upload(t *testing.T, token string, data []byte) answer {
	t.Helper()
	body, ct := multipartBody(t, "hello.apk", "application/vnd.android.package-archive", data)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/apps", bytes.NewReader(body))
	r.Header.Set("Content-Type", ct)
	return e.do(t, token, r)
}

func (e env) request(t *testing.T, token, method, path string) answer {
	t.Helper()
	return e.do(t, token, httptest.NewRequest(method, path, nil))
}

// recorded returns the number of apps and objects rows and the keys in the
// bucket.
func (e env) recorded(t *testing.T) (apps, objects int, keys []string) {
	t.Helper()
	ctx := context.Background()
	if err := e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM apps), (SELECT count(*) FROM objects)`).Scan(&apps, &objects); err != nil {
		t.Fatal(err)
	}
	return apps, objects, objectstoretest.Keys(t, e.store, "")
}

func readAPK(t *testing.T, spec apptest.Spec) ([]byte, apptest.Badging) {
	t.Helper()
	path := apptest.Build(t, spec)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, apptest.DumpBadging(t, path)
}

func TestUploadStoresTheAPKOnceByDigestAndDeletesItWithItsLastApp(t *testing.T) {
	t.Parallel()
	e := setup(t)
	data, want := readAPK(t, apptest.Spec{Package: "org.example.notes", VersionCode: 12, VersionName: "3.1",
		Permissions: []string{"android.permission.INTERNET"}, Label: "Notes"})
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	alice, aliceTok := e.token(t)
	_, bobTok := e.token(t)

	a := e.upload(t, aliceTok, data)
	if a.status != http.StatusCreated {
		t.Fatalf("upload = %d %s", a.status, a.body)
	}
	got := a.app(t)
	if got.UserID != alice || got.Package != want.Package || got.VersionCode != want.VersionCode ||
		got.VersionName != want.VersionName || got.Label != want.Label || got.MinSDK != want.MinSDK ||
		got.TargetSDK != want.TargetSDK || got.LaunchableActivity != want.LaunchableActivity ||
		!slices.Equal(got.Permissions, want.Permissions) || got.SHA256 != digest || got.Size != int64(len(data)) ||
		got.Filename != "hello.apk" {
		t.Fatalf("uploaded app = %+v\naapt says %+v, digest %s", got, want, digest)
	}
	b := e.upload(t, bobTok, data)
	if b.status != http.StatusCreated {
		t.Fatalf("bob's upload of the same bytes = %d %s", b.status, b.body)
	}
	if n, objects, keys := e.recorded(t); n != 2 || objects != 1 || len(keys) != 1 || !strings.HasPrefix(keys[0], "apks/") {
		t.Fatalf("after two uploads of the same bytes: %d apps, %d objects, keys %v", n, objects, keys)
	}
	var uploaded int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE type = $1`, appevents.EventUploaded).Scan(&uploaded); err != nil || uploaded != 2 {
		t.Fatalf("uploaded events = %d, %v", uploaded, err)
	}

	// Own apps only: bob cannot see or delete alice's.
	if r := e.request(t, bobTok, http.MethodGet, "/api/v1/apps/"+got.ID); r.status != http.StatusNotFound {
		t.Fatalf("bob GET alice's app = %d", r.status)
	}
	if r := e.request(t, bobTok, http.MethodDelete, "/api/v1/apps/"+got.ID); r.status != http.StatusNotFound {
		t.Fatalf("bob DELETE alice's app = %d", r.status)
	}
	list := e.request(t, aliceTok, http.MethodGet, "/api/v1/apps")
	var page app.Page
	if err := json.Unmarshal(list.body, &page); err != nil || len(page.Apps) != 1 || page.Apps[0].ID != got.ID {
		t.Fatalf("alice's list = %d %s", list.status, list.body)
	}
	if r := e.request(t, aliceTok, http.MethodGet, "/api/v1/apps/"+got.ID); r.status != http.StatusOK || r.app(t).ID != got.ID {
		t.Fatalf("alice GET her app = %d %s", r.status, r.body)
	}

	// The object stays while bob's app references it, and goes with it.
	if r := e.request(t, aliceTok, http.MethodDelete, "/api/v1/apps/"+got.ID); r.status != http.StatusNoContent {
		t.Fatalf("alice DELETE = %d %s", r.status, r.body)
	}
	if n, objects, keys := e.recorded(t); n != 1 || objects != 1 || len(keys) != 1 {
		t.Fatalf("after alice's delete: %d apps, %d objects, keys %v", n, objects, keys)
	}
	if r := e.request(t, bobTok, http.MethodDelete, "/api/v1/apps/"+b.app(t).ID); r.status != http.StatusNoContent {
		t.Fatalf("bob DELETE = %d %s", r.status, r.body)
	}
	if n, objects, keys := e.recorded(t); n != 0 || objects != 0 || len(keys) != 0 {
		t.Fatalf("after the last delete: %d apps, %d objects, keys %v", n, objects, keys)
	}
	if r := e.request(t, aliceTok, http.MethodGet, "/api/v1/apps/"+got.ID); r.status != http.StatusNotFound {
		t.Fatalf("GET a deleted app = %d", r.status)
	}
}

func TestUploadOfAPackageVersionAgainIsAConflictAndStoresNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first, _ := readAPK(t, apptest.Spec{Package: "org.example.same", VersionCode: 5, Label: "One"})
	again, _ := readAPK(t, apptest.Spec{Package: "org.example.same", VersionCode: 5, Label: "Other bytes"})
	_, tok := e.token(t)
	if r := e.upload(t, tok, first); r.status != http.StatusCreated {
		t.Fatalf("first upload = %d %s", r.status, r.body)
	}
	r := e.upload(t, tok, again)
	if r.status != http.StatusConflict || r.code() != "conflict" {
		t.Fatalf("same package and version code again = %d %s", r.status, r.body)
	}
	if n, objects, keys := e.recorded(t); n != 1 || objects != 1 || len(keys) != 1 {
		t.Fatalf("after the conflict: %d apps, %d objects, keys %v", n, objects, keys)
	}
}

// countingReader counts what is read of it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestUploadRefusesBadInputAndRecordsNothing(t *testing.T) {
	t.Parallel()
	real, _ := readAPK(t, apptest.Spec{})
	notZip := []byte(strings.Repeat("not an archive ", 1000))
	noManifest := zipOf(t, map[string][]byte{"classes.dex": []byte("dex\n035\x00")})
	bomb := zipOf(t, map[string][]byte{"AndroidManifest.xml": make([]byte, 50<<20)})
	corrupted := bytes.Clone(real)
	// Scramble the manifest's data in place: its local header is the first
	// entry aapt writes.
	if i := bytes.Index(corrupted, []byte("AndroidManifest.xml")); i > 0 {
		for j := i + 40; j < i+400 && j < len(corrupted); j++ {
			corrupted[j] ^= 0x5a
		}
	}
	const small = 64 << 10
	big := bytes.Repeat([]byte{7}, small+1)

	type request struct {
		contentType string
		body        io.Reader
		length      int64 // -1: unknown (chunked)
	}
	multi := func(partType string, data []byte) request {
		b, ct := multipartBody(t, "x.apk", partType, data)
		return request{ct, bytes.NewReader(b), int64(len(b))}
	}
	// Cases over the size limit run with a limit of small; the others with
	// the default, so that only the content is at fault.
	cases := map[string]struct {
		req    func() request
		status int
		code   string
	}{
		"JSON instead of multipart": {func() request {
			return request{"application/json", strings.NewReader(`{"file":"x"}`), 12}
		}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		"raw APK instead of multipart": {func() request {
			return request{"application/vnd.android.package-archive", bytes.NewReader(real), int64(len(real))}
		}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		"file part that is text":    {func() request { return multi("text/plain", real) }, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		"no file part":              {func() request { b, ct := multipartFields(t); return request{ct, bytes.NewReader(b), int64(len(b))} }, http.StatusBadRequest, "invalid"},
		"empty file":                {func() request { return multi("", nil) }, http.StatusBadRequest, "invalid"},
		"not a zip":                 {func() request { return multi("", notZip) }, http.StatusBadRequest, "invalid"},
		"zip without a manifest":    {func() request { return multi("", noManifest) }, http.StatusBadRequest, "invalid"},
		"corrupted binary manifest": {func() request { return multi("", corrupted) }, http.StatusBadRequest, "invalid"},
		"zip bomb":                  {func() request { return multi("", bomb) }, http.StatusBadRequest, "invalid"},
		"file over the limit, length unknown": {func() request {
			b, ct := multipartBody(t, "x.apk", "", big)
			return request{ct, bytes.NewReader(b), -1}
		}, http.StatusRequestEntityTooLarge, "too_large"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			if c.status == http.StatusRequestEntityTooLarge {
				e = setup(t, func(cfg *app.Config) { cfg.MaxAPKBytes = small })
			}
			_, tok := e.token(t)
			req := c.req()
			r := httptest.NewRequest(http.MethodPost, "/api/v1/apps", req.body)
			r.ContentLength = req.length
			r.Header.Set("Content-Type", req.contentType)
			a := e.do(t, tok, r)
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("answer = %d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
			if n, objects, keys := e.recorded(t); n != 0 || objects != 0 || len(keys) != 0 {
				t.Fatalf("after a refused upload: %d apps, %d objects, keys %v", n, objects, keys)
			}
		})
	}
}

// multipartFields returns a multipart body without a file part.
func multipartFields(t *testing.T) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("name", "no file here")
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func TestUploadOverTheLimitIsRefusedWithoutReadingTheBody(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	e := setup(t, func(cfg *app.Config) { cfg.MaxAPKBytes = limit })
	_, tok := e.token(t)
	body := &countingReader{r: io.LimitReader(zeroReader{}, 300<<20)}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/apps", body)
	r.ContentLength = 300 << 20
	r.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	a := e.do(t, tok, r)
	if a.status != http.StatusRequestEntityTooLarge || a.code() != "too_large" {
		t.Fatalf("answer = %d %s", a.status, a.body)
	}
	if n := body.n.Load(); n != 0 {
		t.Fatalf("read %d bytes of a body that says it is over the limit", n)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestUploadWhileTheStoreIsDownAnswers503AndRecordsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3, err := services.StartS3(ctx, t.TempDir(), services.S3Options{}, nil)
	if err != nil {
		t.Fatalf("StartS3: %v", err)
	}
	t.Cleanup(func() { _ = s3.Stop(context.Background()) })
	e := setupOn(t, s3.Config())
	data, _ := readAPK(t, apptest.Spec{})
	_, tok := e.token(t)
	if r := e.upload(t, tok, data); r.status != http.StatusCreated {
		t.Fatalf("upload while the store is up = %d %s", r.status, r.body)
	}
	s3.Kill()
	other, _ := readAPK(t, apptest.Spec{VersionCode: 2})
	r := e.upload(t, tok, other)
	if r.status != http.StatusServiceUnavailable || r.code() != "unavailable" {
		t.Fatalf("upload while the store is down = %d %s", r.status, r.body)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM apps`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("apps after the refused upload = %d, %v", n, err)
	}
	// Deleting needs the store too (the object goes with its last app):
	// refused, and the app stays.
	list, err := e.svc.List(ctx, mustUser(t, e, tok), 0, "")
	if err != nil || len(list.Apps) != 1 {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if d := e.request(t, tok, http.MethodDelete, "/api/v1/apps/"+list.Apps[0].ID); d.status != http.StatusServiceUnavailable {
		t.Fatalf("delete while the store is down = %d %s", d.status, d.body)
	}
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM apps`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("apps after the refused delete = %d, %v", n, err)
	}
}

func mustUser(t *testing.T, e env, tok string) string {
	t.Helper()
	p, err := e.svc.Verifier().Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return p.UserID
}

func TestDownloadIsAPresignedURLOfTheSameBytes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	data, _ := readAPK(t, apptest.Spec{})
	user, tok := e.token(t)
	a := e.upload(t, tok, data).app(t)
	d, err := e.svc.Download(context.Background(), user, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.SHA256 != a.SHA256 || d.Size != int64(len(data)) || d.Package != a.Package || time.Until(d.ExpiresAt) > 15*time.Minute {
		t.Fatalf("download = %+v", d)
	}
	resp, err := http.Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET the presigned URL = %d, %d bytes", resp.StatusCode, len(got))
	}
	if _, err := e.svc.Download(context.Background(), events.NewID(), a.ID); err == nil {
		t.Fatal("another user got a download of the app")
	}
}

// zipOf builds a zip archive of the named entries, deflated.
func zipOf(t *testing.T, entries map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range entries {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// However the form is framed (the APK alone, as browsers send it; followed
// by another field; a close delimiter without its CRLF; a preamble), the
// stored object is exactly the APK's bytes.
func TestUploadStoresExactlyTheAPKWhateverTheFormsFraming(t *testing.T) {
	t.Parallel()
	e := setup(t)
	data, _ := readAPK(t, apptest.Spec{Package: "org.example.framing"})
	sum := sha256.Sum256(data)
	const b = "frame-boundary"
	head := "--" + b + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.apk\"\r\n" +
		"Content-Type: application/vnd.android.package-archive\r\n\r\n"
	for name, body := range map[string]string{
		"alone":              head + string(data) + "\r\n--" + b + "--\r\n",
		"then a field":       head + string(data) + "\r\n--" + b + "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--" + b + "--\r\n",
		"no CRLF at the end": head + string(data) + "\r\n--" + b + "--",
		"preamble":           "ignored preamble\r\n" + head + string(data) + "\r\n--" + b + "--\r\n",
	} {
		_, tok := e.token(t)
		r := httptest.NewRequest(http.MethodPost, "/api/v1/apps", strings.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+b)
		ans := e.do(t, tok, r)
		if ans.status != http.StatusCreated {
			t.Fatalf("%s: upload = %d %s", name, ans.status, ans.body)
		}
		a := ans.app(t)
		if a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(data)) {
			t.Fatalf("%s: recorded %s, %d bytes", name, a.SHA256, a.Size)
		}
		var key string
		if err := e.pool.QueryRow(context.Background(), `SELECT key FROM objects WHERE sha256 = $1`, a.SHA256).Scan(&key); err != nil {
			t.Fatal(err)
		}
		size, err := e.store.Head(context.Background(), key)
		got := make([]byte, size)
		if err == nil {
			_, err = e.store.ReaderAt(context.Background(), key, size).ReadAt(got, 0)
		}
		if (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(got, data) {
			t.Fatalf("%s: the stored object (%d bytes, %v) is not the APK (%d bytes)", name, size, err, len(data))
		}
		// Deleted, so that the next case stores its own object.
		if ans := e.request(t, tok, http.MethodDelete, "/api/v1/apps/"+a.ID); ans.status != http.StatusNoContent {
			t.Fatalf("%s: delete = %d", name, ans.status)
		}
	}
}
