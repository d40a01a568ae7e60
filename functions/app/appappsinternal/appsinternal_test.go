package appappsinternal_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/appappsinternal"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/objectstore"
	"github.com/cloudphone/cloudphone/shared/objectstore/objectstoretest"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

func TestTheDeviceContextGetsADownloadOfAUsersOwnAppAndNoOneElseDoes(t *testing.T) {
	t.Parallel()
	apptest.Need(t)
	ctx := context.Background()
	rdb := dbtest.Redis(t)
	_, userKey, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Config{TokenPublicKey: userKey, MaxAPKBytes: 200 << 20, DownloadTTL: 15 * time.Minute, Store: objectstoretest.Config(t)}
	store, err := objectstore.New(cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.Open(dbtest.Database(t, outbox.Migrations, inbox.Migrations, app.Migrations), store, rdb, cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fn := appappsinternal.New(svc, servicetoken.NewVerifier(pub, servicetoken.VerifierOptions{}), logging.Discard())
	token := func(caller string) string {
		t.Helper()
		m := servicetoken.NewMinter(caller, priv, servicetoken.MinterOptions{
			Redis: rdb, Log: logging.Discard(), KeyPrefix: "test:svctoken:" + events.NewID() + ":",
		})
		tok, err := m.Token(ctx, servicetoken.ContextApp)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	get := func(path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		fn.Handle(w, r)
		return w
	}

	owner := events.NewID()
	f, err := os.Open(apptest.Build(t, apptest.Spec{Package: "org.example.internal", VersionCode: 3}))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := svc.Upload(ctx, owner, "internal.apk", f, -1)
	if err != nil {
		t.Fatal(err)
	}
	path := "/internal/v1/users/" + owner + "/apps/" + a.ID + "/download"
	device := token(servicetoken.ContextDevice)

	w := get(path, device)
	var d app.Download
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &d) != nil {
		t.Fatalf("download: %d %s", w.Code, w.Body)
	}
	if d.AppID != a.ID || d.Package != "org.example.internal" || d.VersionCode != 3 || d.SHA256 != a.SHA256 ||
		d.Size != a.Size || d.URL == "" {
		t.Fatalf("download %+v of app %+v", d, a)
	}
	if w := get("/internal/v1/users/"+events.NewID()+"/apps/"+a.ID+"/download", device); w.Code != http.StatusNotFound {
		t.Fatalf("another user's app: %d %s, want 404", w.Code, w.Body)
	}
	if w := get(path, token(servicetoken.ContextBilling)); w.Code != http.StatusForbidden {
		t.Fatalf("billing asked: %d %s, want 403", w.Code, w.Body)
	}
	if w := get(path, ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("no service token: %d %s, want 401", w.Code, w.Body)
	}
}
