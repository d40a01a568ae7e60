package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/infra/local/services"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// Postgres gone for a while: requests get a clear 503 with a stable code, not
// a 500; when it is back the platform recovers by itself, and the events of
// the requests that succeeded before and after are all delivered.
func TestPostgresOutageGives503AndLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	port, err := services.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "e2e-pg-") // t.TempDir's parent is closed to the postgres user
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	pgDir := filepath.Join(tmp, "pg")
	opts := services.PostgresOptions{Port: port}
	pg, err := services.StartPostgres(ctx, pgDir, opts, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })

	sub := &subscriber{}
	e := newEnv(t)
	p := startWith(t, e, sub, pg.URL())
	before := register(t, p.URL(), "carol")

	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	status := call(t, "POST", p.URL()+"/api/v1/auth/register", map[string]string{
		"username": "dave", "email": "dave@example.com", "password": "correct horse battery",
	}, &body)
	if status != http.StatusServiceUnavailable || body.Error.Code != "unavailable" {
		t.Fatalf("with Postgres down: register answered %d %q, want 503 unavailable", status, body.Error.Code)
	}

	pg, err = services.StartPostgres(ctx, pgDir, opts, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	var after registered
	eventually(t, 20*time.Second, "register never worked again after Postgres came back", func() bool {
		return call(t, "POST", p.URL()+"/api/v1/auth/register", map[string]string{
			"username": "dave", "email": "dave@example.com", "password": "correct horse battery",
		}, &after) == http.StatusCreated
	})
	for _, u := range []string{before.ID, after.ID} {
		eventually(t, 20*time.Second, "an event was lost across the outage", func() bool {
			n, _ := sub.received(t, u)
			return n == 1
		})
	}
}
