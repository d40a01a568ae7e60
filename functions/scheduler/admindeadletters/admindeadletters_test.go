package admindeadletters_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/functions/scheduler/admindeadletters"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function/functiontest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

type bundle struct {
	store  *scheduler.DeadLetters
	fn     *admindeadletters.Function
	issuer *auth.Issuer
	count  func(sql string, args ...any) int
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool := dbtest.Database(t, scheduler.MigrationSets()...)
	rdb := dbtest.Redis(t)
	priv, pub, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := auth.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := auth.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	store := scheduler.NewDeadLetters(pool)
	return bundle{
		store:  store,
		fn:     admindeadletters.New(store, auth.NewVerifier(pk, auth.NewRedisRevocations(rdb)), logging.Discard()),
		issuer: auth.NewIssuer(sk, time.Hour),
		count: func(sql string, args ...any) int {
			var n int
			if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	}
}

func (b bundle) token(t *testing.T, roles ...string) string {
	t.Helper()
	tok, _, err := b.issuer.Issue(auth.Principal{UserID: events.NewID(), Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (b bundle) call(method, path, token string) *httptest.ResponseRecorder {
	return functiontest.Call(b.fn.Handle, method, path, token, nil)
}

func TestAnAdminListsDeadLettersAndRedrivesOneThroughTheOutbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	e, err := events.New(ctx, "cloudphone.test.happened", "/cloudphone/test", "thing-1", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	e.SetExtension("knativeerrordest", "http://consumer")
	e.SetExtension("knativeerrorcode", "503")
	if err := b.store.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	admin := b.token(t, "user", auth.RoleAdmin)

	w := b.call("GET", "/api/v1/admin/dead-letters?limit=10", admin)
	var list admindeadletters.List
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list.Items) != 1 || list.Items[0].EventID != e.ID() {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	id := list.Items[0].ID

	w = b.call("POST", "/api/v1/admin/dead-letters/"+fmt.Sprint(id)+"/redrive", admin)
	var l scheduler.DeadLetter
	if w.Code != http.StatusAccepted || json.Unmarshal(w.Body.Bytes(), &l) != nil || l.Redrives != 1 || l.RedrivenAt == nil {
		t.Fatalf("redrive: %d %s", w.Code, w.Body)
	}
	if n := b.count(`SELECT count(*) FROM outbox WHERE event_id = $1`, e.ID()); n != 1 {
		t.Fatalf("%d outbox rows for the re-driven event, want 1", n)
	}
	if w := b.call("POST", "/api/v1/admin/dead-letters/999999/redrive", admin); w.Code != http.StatusNotFound {
		t.Fatalf("unknown letter: %d, want 404", w.Code)
	}
}

func TestOnlyAdminsSeeOrRedriveDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user := b.token(t, "user")
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/admin/dead-letters"},
		{"POST", "/api/v1/admin/dead-letters/1/redrive"},
	} {
		if w := b.call(tc.method, tc.path, user); w.Code != http.StatusForbidden {
			t.Errorf("user on %s %s: %d, want 403", tc.method, tc.path, w.Code)
		}
		if w := b.call(tc.method, tc.path, ""); w.Code != http.StatusUnauthorized {
			t.Errorf("nobody on %s %s: %d, want 401", tc.method, tc.path, w.Code)
		}
	}
}
