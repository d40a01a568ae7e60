package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// apiError is the platform's JSON error: {"error": {"code", "message"}}.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// exitCode maps an error to cpctl's exit code.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		return exitFailure
	}
	switch ae.Code {
	case "invalid", "unprocessable", "too_large", "unsupported_media_type":
		return exitUsage
	case "unauthorized", "forbidden":
		return exitAuth
	case "not_found":
		return exitNotFound
	case "conflict":
		return exitConflict
	case "insufficient_funds", "quota_exceeded", "rate_limited":
		return exitRefused
	}
	return exitFailure
}

// client calls the platform as the signed-in user: it refreshes the tokens
// once on a 401 and saves them. Safe for concurrent use.
type client struct {
	http       *http.Client
	path       string // config file
	mu         sync.Mutex
	cfg        config
	userAgent  string
	refreshing sync.Mutex
}

// newClient loads the config named by f and wants a signed-in user (unless
// anonymous).
func (a *app) newClient(f *flags, anonymous bool) (*client, error) {
	path, err := a.configPath(f.configPath)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if f.url != "" {
		if cfg.URL, err = normalizeURL(f.url); err != nil {
			return nil, err
		}
	}
	if cfg.URL == "" {
		return nil, exitf(exitAuth, "no platform URL: run cpctl login --url URL first")
	}
	if !anonymous && cfg.AccessToken == "" {
		return nil, exitf(exitAuth, "not signed in: run cpctl login")
	}
	return &client{http: httpClient(), path: path, cfg: cfg, userAgent: "cpctl"}, nil
}

func (c *client) config() config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// do sends method path with body (JSON-encoded unless nil) and decodes a 2xx
// JSON answer into out (when not nil). A non-2xx answer is an *apiError.
func (c *client) do(ctx context.Context, method, path string, body, out any, header ...string) error {
	resp, err := c.send(ctx, method, path, body, header...)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

// send is do without decoding: the caller reads and closes a 2xx answer.
func (c *client) send(ctx context.Context, method, path string, body any, header ...string) (*http.Response, error) {
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	for attempt := 0; ; attempt++ {
		token := c.config().AccessToken
		resp, err := c.once(ctx, method, path, raw, token, header)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && token != "" {
			resp.Body.Close()
			if err := c.refresh(ctx, token); err != nil {
				return nil, err
			}
			continue
		}
		if resp.StatusCode/100 != 2 {
			defer resp.Body.Close()
			return nil, readError(resp)
		}
		return resp, nil
	}
}

func (c *client) once(ctx context.Context, method, path string, raw []byte, token string, header []string) (*http.Response, error) {
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.config().URL+path, rd)
	if err != nil {
		return nil, err
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

func readError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = json.Unmarshal(b, &body)
	e := &apiError{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message}
	if e.Code == "" {
		e.Code = codeOfStatus(resp.StatusCode)
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}

func codeOfStatus(status int) string {
	switch status {
	case 400:
		return "invalid"
	case 401:
		return "unauthorized"
	case 403:
		return "forbidden"
	case 404:
		return "not_found"
	case 409:
		return "conflict"
	case 429:
		return "rate_limited"
	case 503:
		return "unavailable"
	}
	return "internal"
}

// tokens is the answer of login and refresh.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

// refresh trades the refresh token for new tokens, unless another goroutine
// already did since stale was sent, and saves them.
func (c *client) refresh(ctx context.Context, stale string) error {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	cfg := c.config()
	if cfg.AccessToken != stale {
		return nil
	}
	if cfg.RefreshToken == "" {
		return exitf(exitAuth, "the session expired: run cpctl login")
	}
	resp, err := c.once(ctx, "POST", "/api/v1/auth/refresh", mustJSON(map[string]string{"refresh_token": cfg.RefreshToken}), "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusUnauthorized {
			return exitf(exitAuth, "the session expired: run cpctl login")
		}
		return readError(resp)
	}
	var t tokens
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return fmt.Errorf("refresh: unreadable answer")
	}
	c.mu.Lock()
	c.cfg.AccessToken, c.cfg.RefreshToken = t.AccessToken, t.RefreshToken
	cfg = c.cfg
	c.mu.Unlock()
	return cfg.save(c.path)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// progress reports a wait on stderr: on a terminal one line rewritten in
// place, otherwise a line whenever the status changes.
type progress struct {
	w     io.Writer
	tty   bool
	last  string
	start time.Time
}

func (a *app) newProgress() *progress {
	tty := false
	if f, ok := a.stderr.(interface{ Stat() (os.FileInfo, error) }); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: a.stderr, tty: tty, start: time.Now()}
}

func (p *progress) update(what string) {
	elapsed := time.Since(p.start).Truncate(time.Second)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s (%s)", what, elapsed)
		p.last = what
		return
	}
	if what != p.last {
		fmt.Fprintf(p.w, "%s (%s)\n", what, elapsed)
		p.last = what
	}
}

func (p *progress) done() {
	if p.tty && p.last != "" {
		fmt.Fprintln(p.w)
	}
}

// httpClient is the client of every call: no overall timeout, as log
// streams and long shell commands last; each command bounds its own waits.
func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 10 * time.Minute,
		MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
}
