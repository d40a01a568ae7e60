package authregister_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user/authregister"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/logging"
)

type bundle struct {
	env usertest.Env
	fn  *authregister.Function
}

func setup(t *testing.T) bundle {
	t.Helper()
	env := usertest.New(t)
	return bundle{env: env, fn: authregister.New(env.Service, logging.Discard())}
}

func (b bundle) post(contentType, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/auth/register", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	b.fn.Handle(w, r)
	return w
}

func errorBody(t *testing.T, w *httptest.ResponseRecorder) apierr.BodyError {
	t.Helper()
	var body apierr.Body
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	return body.Error
}

func TestRegisterAnswers201WithTheProfile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.post("application/json", `{"username":"Zed_9","email":"zed@example.com","password":"0123456789"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got struct {
		ID, Username, Email, Status string
		Roles, Permissions          []string
		CreatedAt                   string `json:"created_at"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID == "" || got.Username != "zed_9" || got.Email != "zed@example.com" || got.Status != "active" ||
		len(got.Roles) != 1 || len(got.Permissions) == 0 || got.CreatedAt == "" {
		t.Fatalf("body = %s", w.Body)
	}
	if strings.Contains(w.Body.String(), "password") {
		t.Fatal("the answer mentions the password")
	}
}

func TestRegisterValidatesEveryRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const pw = "0123456789"
	cases := map[string]struct {
		contentType, body string
		status            int
		mention           string
	}{
		"username too short":          {"", `{"username":"ab","email":"a@example.com","password":"` + pw + `"}`, 400, "username"},
		"username too long":           {"", `{"username":"` + strings.Repeat("a", 33) + `","email":"a@example.com","password":"` + pw + `"}`, 400, "username"},
		"username bad char":           {"", `{"username":"al ice","email":"a@example.com","password":"` + pw + `"}`, 400, "username"},
		"username unicode":            {"", `{"username":"alicé","email":"a@example.com","password":"` + pw + `"}`, 400, "username"},
		"username control char":       {"", `{"username":"ali\u0000ce","email":"a@example.com","password":"` + pw + `"}`, 400, "control"},
		"username reserved":           {"", `{"username":"root","email":"a@example.com","password":"` + pw + `"}`, 400, "reserved"},
		"email missing":               {"", `{"username":"alice","password":"` + pw + `"}`, 400, "email"},
		"email no at":                 {"", `{"username":"alice","email":"alice.example.com","password":"` + pw + `"}`, 400, "email"},
		"email no domain dot":         {"", `{"username":"alice","email":"alice@localhost","password":"` + pw + `"}`, 400, "email"},
		"email display name":          {"", `{"username":"alice","email":"Alice <a@example.com>","password":"` + pw + `"}`, 400, "email"},
		"email too long":              {"", `{"username":"alice","email":"a@` + strings.Repeat("b", 250) + `.com","password":"` + pw + `"}`, 400, "email"},
		"email control char":          {"", `{"username":"alice","email":"a\u0007@example.com","password":"` + pw + `"}`, 400, "control"},
		"password too short":          {"", `{"username":"alice","email":"a@example.com","password":"012345678"}`, 400, "password"},
		"password too long":           {"", `{"username":"alice","email":"a@example.com","password":"` + strings.Repeat("p", 129) + `"}`, 400, "password"},
		"password control char":       {"", `{"username":"alice","email":"a@example.com","password":"0123456789\n"}`, 400, "control"},
		"all wrong lists every field": {"", `{"username":"a","email":"b","password":"c"}`, 400, "username: must be 3 to 32 characters; email: must be an address like name@example.com; password: must be 10 to 128 characters"},
		"unknown field":               {"", `{"username":"alice","email":"a@example.com","password":"` + pw + `","roles":["admin"]}`, 400, `unknown field "roles"`},
		"wrong type":                  {"", `{"username":42,"email":"a@example.com","password":"` + pw + `"}`, 400, `"username" must be a string`},
		"two JSON values":             {"", `{"username":"alice","email":"a@example.com","password":"` + pw + `"} {}`, 400, "single JSON value"},
		"wrong content type":          {"text/plain", `{"username":"alice","email":"a@example.com","password":"` + pw + `"}`, 415, "application/json"},
		"no content type":             {"-", `{"username":"alice","email":"a@example.com","password":"` + pw + `"}`, 415, "application/json"},
		"over 1 MiB":                  {"", `{"username":"alice","email":"a@example.com","password":"` + strings.Repeat("p", 1<<20) + `"}`, 413, "larger than"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ct := tc.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			w := b.post(ct, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if e := errorBody(t, w); !strings.Contains(e.Message, tc.mention) {
				t.Fatalf("message %q does not mention %q", e.Message, tc.mention)
			}
		})
	}
	var n int
	if err := b.env.Pool.QueryRow(t.Context(), `SELECT count(*) FROM users`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d users after only invalid requests (%v)", n, err)
	}
}

func TestConcurrentRegistrationsOfOneNameYieldExactlyOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 20
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Same username, different emails: only the username index decides.
			email := "racer" + string(rune('a'+i)) + "@example.com"
			codes[i] = b.post("application/json", `{"username":"racer","email":"`+email+`","password":"0123456789"}`).Code
		})
	}
	wg.Wait()
	created, conflicts := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			conflicts++
		}
	}
	if created != 1 || conflicts != n-1 {
		t.Fatalf("codes = %v: %d created, %d conflicts", codes, created, conflicts)
	}
	var users, quotas, events int
	err := b.env.Pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM quotas), (SELECT count(*) FROM outbox)`).
		Scan(&users, &quotas, &events)
	if err != nil || users != 1 || quotas != 1 || events != 1 {
		t.Fatalf("users %d quotas %d events %d (%v), want 1 each", users, quotas, events, err)
	}
}

func TestDuplicateEmailIsConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if w := b.post("application/json", `{"username":"first","email":"same@example.com","password":"0123456789"}`); w.Code != 201 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	w := b.post("application/json", `{"username":"second","email":"SAME@example.com","password":"0123456789"}`)
	if w.Code != http.StatusConflict || errorBody(t, w).Code != apierr.Conflict {
		t.Fatalf("second: %d %s", w.Code, w.Body)
	}
}

func TestRegisterOtherMethodsAndPathsAreNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct{ method, path string }{{"GET", "/api/v1/auth/register"}, {"POST", "/api/v1/auth/other"}} {
		w := httptest.NewRecorder()
		b.fn.Handle(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != http.StatusNotFound || errorBody(t, w).Code != apierr.NotFound {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
	}
}
