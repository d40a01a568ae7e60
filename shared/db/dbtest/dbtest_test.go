package dbtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/db/dbtest"
)

func TestDatabaseIsFreshAndDroppedWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("user", func(t *testing.T) {
		pool := dbtest.Database(t)
		name = pool.Config().ConnConfig.Database
		var current string
		if err := pool.QueryRow(t.Context(), `SELECT current_database()`).Scan(&current); err != nil {
			t.Fatal(err)
		}
		if current != name || current == "postgres" {
			t.Fatalf("connected to %q, want a database of its own", current)
		}
		// An open connection does not stop the drop.
		if _, err := pool.Exec(t.Context(), `CREATE TABLE held (x int)`); err != nil {
			t.Fatal(err)
		}
	})

	cfg, err := pgxpool.ParseConfig(dbtest.BaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg.ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}
