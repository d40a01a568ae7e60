package rehearsal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"
)

// awaitReady polls addr's readiness every 5 ms until it answers 200.
func awaitReady(addr string, within time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get("http://" + addr + "/_/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", addr, within)
}

// pct is the p-th percentile of ds (nearest rank), rounded to 0.1 ms.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(i-1, 0)].Round(100 * time.Microsecond)
}

func jsonCall(b *testing.B, method, url string, body, out any, tok string) int {
	b.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// signUp registers a user and logs them in.
func signUp(b *testing.B, api string) (id, token string) {
	var u struct{ ID string }
	if st := jsonCall(b, "POST", api+"/auth/register", map[string]string{
		"username": "bench", "email": "bench@example.com", "password": "correct horse battery"}, &u, ""); st != http.StatusCreated {
		b.Fatalf("register: %d", st)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if st := jsonCall(b, "POST", api+"/auth/login", map[string]string{"login": "bench", "password": "correct horse battery"}, &tok, ""); st != http.StatusOK {
		b.Fatalf("login: %d", st)
	}
	return u.ID, tok.AccessToken
}

// inboxCount is how many app.installed notifications the inbox lists.
func inboxCount(b *testing.B, api, tok string) int {
	var inbox struct{ Items []struct{ Type string } }
	jsonCall(b, "GET", api+"/notifications?limit=100", nil, &inbox, tok)
	n := 0
	for _, it := range inbox.Items {
		if it.Type == "app.installed" {
			n++
		}
	}
	return n
}

func removeImages(cli *client.Client, tag string) {
	list, _ := cli.ImageList(context.Background(), image.ListOptions{})
	for _, im := range list {
		for _, ref := range im.RepoTags {
			if strings.HasSuffix(ref, ":"+tag) {
				_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{})
			}
		}
	}
}

func dropDatabases(dbURL, prefix string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		_, _ = conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}
