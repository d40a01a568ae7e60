// Package deviceadbapi is the device-adb-api function: a user's running phone
// used over plain HTTP, through the phone's ADB endpoint on its device host
// — a shell command and its output, a screenshot, the phone's log as
// Server-Sent Events.
package deviceadbapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Name is the function's name in the catalog.
const Name = "device-adb-api"

// The function's routes.
const (
	RouteShell      = "POST /api/v1/devices/{id}/shell"
	RouteScreenshot = "GET /api/v1/devices/{id}/screenshot"
	RouteLogs       = "GET /api/v1/devices/{id}/logs"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteShell, RouteScreenshot, RouteLogs}

// Limits of a shell request.
const (
	CommandMax      = 4096 // bytes
	TimeoutMax      = 300  // seconds
	TimeoutDefault  = 30   // seconds
	ShellOutputMax  = 1 << 20
	screenshotLimit = 30 * time.Second
)

// Devices is what the function needs of the device context: the ADB
// endpoint of the caller's own running device (apierr NotFound for another
// user's, Conflict when it is not running), and the record that it was used
// (which keeps it from being stopped as idle).
type Devices interface {
	ADBEndpoint(ctx context.Context, p auth.Principal, id string) (string, error)
	Touch(ctx context.Context, id string) error
}

// Config is the function's configuration.
type Config struct {
	// LogsMaxDuration ends a followed log stream, so it never outlives the
	// platform's request timeout; clients reconnect.
	LogsMaxDuration time.Duration `env:"ADB_LOGS_MAX_DURATION" default:"9m"`
}

// Function answers Routes for the bearer of a valid access token (401
// otherwise), on the caller's own running phone: another user's phone is
// 404, a phone that is not running 409, a phone whose endpoint does not
// answer 503. Safe for concurrent use.
type Function struct {
	devs Devices
	cfg  Config
	log  *slog.Logger
	mux  *http.ServeMux
	dial func(ctx context.Context, addr string) (*adb.Client, error)
}

// New returns the function. It panics when an argument is nil.
func New(devs Devices, v *auth.Verifier, cfg Config, log *slog.Logger) *Function {
	if devs == nil || v == nil || log == nil {
		panic("deviceadbapi: New needs the device context, an auth.Verifier and a logger")
	}
	if cfg.LogsMaxDuration <= 0 {
		cfg.LogsMaxDuration = 9 * time.Minute
	}
	f := &Function{devs: devs, cfg: cfg, log: log, mux: httpjson.NewMux(log),
		dial: func(ctx context.Context, addr string) (*adb.Client, error) { return adb.Dial(ctx, addr) }}
	require := auth.Require(v, log)
	f.mux.Handle(RouteShell, require(http.HandlerFunc(f.shell)))
	f.mux.Handle(RouteScreenshot, require(http.HandlerFunc(f.screenshot)))
	f.mux.Handle(RouteLogs, require(http.HandlerFunc(f.logs)))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// ShellRequest is the body of RouteShell: Command runs through the phone's
// shell (at most CommandMax bytes, no NUL); TimeoutS bounds it (1 to
// TimeoutMax seconds, TimeoutDefault when 0).
type ShellRequest struct {
	Command  string `json:"command"`
	TimeoutS int    `json:"timeout_s"`
}

// ShellResult is the answer of RouteShell. ExitCode is the command's exit
// status, or -1 when it timed out (TimedOut) before it ended. Stdout and
// Stderr keep at most ShellOutputMax bytes each (Truncated says when more
// came); bytes that are not UTF-8 are replaced.
type ShellResult struct {
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	ExitCode  int    `json:"exit_code"`
	TimedOut  bool   `json:"timed_out"`
	Truncated bool   `json:"truncated"`
}

// connect checks the caller and dials its phone.
func (f *Function) connect(ctx context.Context, r *http.Request) (*adb.Client, error) {
	p, err := auth.Allow(auth.Access{}, r)
	if err != nil {
		return nil, err
	}
	addr, err := f.devs.ADBEndpoint(ctx, p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if err := f.devs.Touch(ctx, r.PathValue("id")); err != nil {
		// Only the idle stop reads this: a missed mark is not worth failing
		// the user's command over.
		f.log.WarnContext(ctx, "device use not recorded", "device_id", r.PathValue("id"), "err", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := f.dial(dctx, addr)
	if err != nil {
		return nil, apierr.Wrap(apierr.Unavailable, fmt.Errorf("dial phone %s at %s: %w", r.PathValue("id"), addr, err), "the phone does not answer")
	}
	return c, nil
}

func (f *Function) fail(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Cache-Control", "private, no-store")
	apierr.Write(w, r, f.log, err)
}

func (f *Function) shell(w http.ResponseWriter, r *http.Request) {
	var req ShellRequest
	if err := httpjson.Decode(r, &req); err != nil {
		f.fail(w, r, err)
		return
	}
	var probs validate.Problems
	probs.Check(strings.TrimSpace(req.Command) != "", "command", "is required")
	probs.Check(len(req.Command) <= CommandMax, "command", fmt.Sprintf("is over %d bytes", CommandMax))
	probs.Check(!strings.ContainsRune(req.Command, 0), "command", "holds a NUL byte")
	probs.Check(req.TimeoutS >= 0 && req.TimeoutS <= TimeoutMax, "timeout_s", fmt.Sprintf("must be within 1-%d (0: %d)", TimeoutMax, TimeoutDefault))
	if err := probs.Err(); err != nil {
		f.fail(w, r, err)
		return
	}
	if req.TimeoutS == 0 {
		req.TimeoutS = TimeoutDefault
	}
	c, err := f.connect(r.Context(), r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(req.TimeoutS)*time.Second)
	defer cancel()
	res, err := c.ShellLimit(ctx, req.Command, ShellOutputMax)
	out := ShellResult{Stdout: text(res.Stdout), Stderr: text(res.Stderr), ExitCode: res.ExitCode, Truncated: res.Truncated}
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil:
		out.TimedOut, out.ExitCode = true, -1
	case err != nil:
		f.fail(w, r, apierr.Wrap(apierr.Unavailable, fmt.Errorf("shell on phone %s: %w", r.PathValue("id"), err), "the phone did not run the command"))
		return
	}
	w.Header().Set("Cache-Control", "private, no-store")
	httpjson.Write(w, http.StatusOK, out)
}

// text is b as valid UTF-8.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func (f *Function) screenshot(w http.ResponseWriter, r *http.Request) {
	c, err := f.connect(r.Context(), r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(r.Context(), screenshotLimit)
	defer cancel()
	png, err := c.Screencap(ctx)
	if err != nil {
		f.fail(w, r, apierr.Wrap(apierr.Unavailable, fmt.Errorf("screenshot of phone %s: %w", r.PathValue("id"), err), "the phone gave no screenshot"))
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", fmt.Sprint(len(png)))
	w.Header().Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(png)
}

// logs streams the phone's log lines as Server-Sent Events, one event
// ("data: <line>") per line, with a comment every 15 s to keep proxies from
// closing an idle stream. ?follow=false sends what the phone holds and
// ends; otherwise the stream follows until the client leaves, the phone
// stops answering, or LogsMaxDuration passes (then an "event: end").
func (f *Function) logs(w http.ResponseWriter, r *http.Request) {
	follow := r.URL.Query().Get("follow") != "false"
	c, err := f.connect(r.Context(), r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.LogsMaxDuration)
	defer cancel()
	args := []string{"-v", "time"}
	if !follow {
		args = append(args, "-d")
	}
	stream, err := c.Logcat(ctx, args...)
	if err != nil {
		f.fail(w, r, apierr.Wrap(apierr.Unavailable, fmt.Errorf("logcat of phone %s: %w", r.PathValue("id"), err), "the phone gave no log"))
		return
	}
	defer stream.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	bw := bufio.NewWriter(w)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
					_, _ = bw.WriteString("event: end\ndata: \n\n")
					_ = bw.Flush()
					_ = rc.Flush()
				}
				return
			}
			_, _ = bw.WriteString("data: " + strings.TrimRight(text([]byte(line)), "\r") + "\n\n")
			if len(lines) == 0 {
				if err := bw.Flush(); err != nil {
					return
				}
				_ = rc.Flush()
			}
		case <-beat.C:
			_, _ = bw.WriteString(": keep-alive\n\n")
			if err := bw.Flush(); err != nil {
				return
			}
			_ = rc.Flush()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
				_, _ = bw.WriteString("event: end\ndata: \n\n")
				_ = bw.Flush()
				_ = rc.Flush()
			}
			return
		}
	}
}
