package e2e

import (
	"context"
	"fmt"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/functions/user"
)

// artefactDir keeps the browser tests' screenshots (git-ignored).
const artefactDir = "artefacts/console"

// chromiumPath is Debian's chromium, or the test is skipped.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("the console's browser tests need Chromium (Debian's chromium package); it is not installed")
	return ""
}

// servesRoute reports whether some catalog function serves route.
func servesRoute(route string) bool {
	for _, e := range catalog.Entries() {
		if slices.Contains(e.Spec.Routes, route) {
			return true
		}
	}
	return false
}

// browser starts a headless Chromium with a phone-sized window; it stops
// when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.WindowSize(430, 932))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	if err := os.RemoveAll(filepath.Join(artefactDir, t.Name())); err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one browser profile (its own cookies) on the platform, with every
// console error, exception and policy violation it saw.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	who  string
	mu   sync.Mutex
	errs []string
	shot int
}

func newTab(t *testing.T, browserCtx context.Context, base, who string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &tab{t: t, ctx: ctx, base: base, who: who}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.errs = append(b.errs, m.String()+" ("+m.URL+")")
				b.mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return b
}

// consoleErrors returns what the tab's console reported so far.
func (b *tab) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}

func (b *tab) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(step, err)
	}
}

// wait evaluates the JavaScript expression every 100 ms until it is true;
// an evaluation that fails because the page is navigating is tried again.
func (b *tab) wait(step, expr string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = fmt.Errorf("still false after %s: %s", within, expr)
			}
			b.fail(step, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.who, expr, err)
	}
	return v
}

// fail ends the test with the page's error message and a screenshot.
func (b *tab) fail(step string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	flash, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#flash")||{}).textContent||""`))
	where, _ := chromedp.Run(ctx, chromedp.Location())
	b.screenshot("failed-" + step)
	b.t.Fatalf("%s: %s: %v (page %s, message %q, console %q)", b.who, step, err, where, flash, b.consoleErrors())
}

// screenshot saves the viewport under artefactDir.
func (b *tab) screenshot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.shot++
	dir := filepath.Join(artefactDir, b.t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%02d-%s.png", b.who, b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// noError checks that the page shows no error message.
func (b *tab) noError(step string) {
	b.t.Helper()
	if msg := eval[string](b, `document.querySelector("#flash").hidden || document.querySelector("#flash").classList.contains("ok") ? "" : document.querySelector("#flash").textContent`); msg != "" {
		b.fail(step, fmt.Errorf("the page shows the error %q", msg))
	}
}

func (b *tab) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

// signUp creates the account in the browser and lands on the home page.
func (b *tab) signUp(name, password string) {
	b.t.Helper()
	b.open("/")
	b.wait("redirected to the login", `location.pathname === "/console/login"`, 10*time.Second)
	b.do("go to sign up", chromedp.Click(chromedp.CSS(`a[href="/console/signup"]`)))
	b.wait("sign-up page", `location.pathname === "/console/signup"`, 10*time.Second)
	b.do("fill the sign-up form",
		chromedp.SendKeys(chromedp.CSS(`#signup-form [name=username]`), name),
		chromedp.SendKeys(chromedp.CSS(`#signup-form [name=email]`), name+"@example.com"),
		chromedp.SendKeys(chromedp.CSS(`#signup-form [name=password]`), password))
	b.screenshot("signup")
	b.do("submit the sign-up form", chromedp.Click(chromedp.CSS(`#signup-form button`)))
	b.wait("signed in", fmt.Sprintf(`location.pathname === "/console/" && document.querySelector("#who").textContent === %q`, name), 15*time.Second)
}

// logIn logs in through the login page.
func (b *tab) logIn(name, password string) {
	b.t.Helper()
	b.open("/console/login")
	b.do("fill the login form",
		chromedp.SendKeys(chromedp.CSS(`#login-form [name=login]`), name),
		chromedp.SendKeys(chromedp.CSS(`#login-form [name=password]`), password),
		chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.wait("logged in", fmt.Sprintf(`document.querySelector("#who") && document.querySelector("#who").textContent === %q`, name), 15*time.Second)
}

// TestConsoleJourneyInTheBrowser drives the console in Chromium against the
// whole platform with the phone stand-in: sign up, an administrator's
// credit, buying a plan, creating a phone and seeing it run (and its screen,
// where the platform serves it), deleting it; another user never sees the
// phone; a cookie call without the CSRF header is refused; and no page logs
// a console error or a Content-Security-Policy violation.
func TestConsoleJourneyInTheBrowser(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	p, _ := startRuntimePlatform(t, map[string]string{"DEVICE_PORT_RANGE": "26700-26799"})
	ctx := browser(t)
	const password = "correct horse battery"

	alice := newTab(t, ctx, p.base, "alice")
	alice.signUp("alice", password)
	alice.noError("home")

	// An administrator credits alice (over the API), then she buys Basic.
	_, admin := p.deviceToken(t, "admin")
	var users struct {
		Users []user.AccountView `json:"users"`
	}
	if st := call(t, "GET", p.base+"/api/v1/admin/users?q=alice", nil, &users, deviceBearer(admin)...); st != 200 || len(users.Users) != 1 {
		t.Fatalf("find alice: %d %+v", st, users)
	}
	if st := call(t, "POST", p.base+"/api/v1/admin/users/"+users.Users[0].ID+"/credit", map[string]any{"amount": 5000, "reason": "browser test"}, nil, deviceBearer(admin)...); st != 201 {
		t.Fatalf("credit alice: %d", st)
	}
	alice.open("/console/")
	alice.wait("balance shown", `document.querySelector("#balance").textContent.startsWith("50.00")`, 10*time.Second)
	alice.screenshot("home-credited")

	alice.open("/console/plans")
	alice.wait("plans listed", `document.querySelector('[data-plan="basic"]') !== null`, 10*time.Second)
	alice.do("buy Basic", chromedp.Click(chromedp.CSS(`[data-plan="basic"]`)))
	alice.wait("order active", `document.querySelector("#order-status").textContent.includes("active") || document.querySelector("#order-status").textContent.includes("failed")`, 60*time.Second)
	if s := eval[string](alice, `document.querySelector("#order-status").textContent`); !strings.Contains(s, "active") {
		alice.fail("order active", fmt.Errorf("the order ended %q", s))
	}
	alice.screenshot("plan-active")

	alice.open("/console/phones")
	alice.wait("size picker", `document.querySelector('#sizes input[type=radio]:checked') !== null`, 10*time.Second)
	alice.do("create a phone",
		chromedp.SendKeys(chromedp.CSS(`#create-form [name=name]`), "alice-phone"),
		chromedp.Click(chromedp.CSS(`#create-form button`)))
	alice.noError("create a phone")
	alice.wait("phone running", `document.querySelector('#phones tr[data-state="running"]') !== null`, 90*time.Second)
	alice.screenshot("phone-running")
	phoneID := eval[string](alice, `document.querySelector('#phones tr[data-state="running"]').dataset.id`)

	alice.do("open the phone", chromedp.Click(chromedp.CSS(`#phones tr[data-state="running"] a`)))
	alice.wait("phone page", `document.querySelector("#phone-state") && document.querySelector("#phone-state").textContent === "running"`, 15*time.Second)
	if servesRoute("GET /api/v1/devices/{id}/screenshot") {
		alice.wait("screen shown", `(function(){var i=document.querySelector("#screen");return i && !i.hidden && i.naturalWidth > 0})()`, 30*time.Second)
		first := eval[string](alice, `document.querySelector("#screen").src`)
		alice.wait("screen refreshed", fmt.Sprintf(`document.querySelector("#screen").src !== %q`, first), 15*time.Second)
		// The tap reaches the phone: a screenshot after it carries the
		// stand-in's mark of the last tap, which none before it had.
		apiToken := login(t, p.base, "alice", password)
		if tapMarked(t, p.base, apiToken, phoneID) {
			t.Fatal("the screen shows a tap before any")
		}
		alice.do("tap the screen", chromedp.Click(chromedp.CSS(`#screen`)))
		eventually(t, 15*time.Second, "the tap shows in the next screenshot", func() bool { return tapMarked(t, p.base, apiToken, phoneID) })
		alice.do("run a shell command",
			chromedp.SendKeys(chromedp.CSS(`#shell-form [name=command]`), "getprop ro.product.model"),
			chromedp.Click(chromedp.CSS(`#shell-form button`)))
		alice.wait("shell answered", `document.querySelector("#shell-out").textContent.includes("[exit 0")`, 30*time.Second)
		alice.noError("tap and shell")
	} else {
		t.Log("the platform serves no screenshot route (device-adb-api); the phone's screen is not checked")
	}
	alice.screenshot("phone-page")

	// An app alice uploaded is installed on the phone from its page, and
	// listed there as installed once the phone has it.
	if servesRoute("POST /api/v1/devices/{id}/apps") && servesRoute("GET /api/v1/apps") {
		apk := apptest.Build(t, apptest.Spec{Package: "org.example.console", VersionCode: 1, Label: "Console app"})
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if st := call(t, "POST", p.base+"/api/v1/auth/login", map[string]string{"login": "alice", "password": password}, &tok); st != 200 {
			t.Fatalf("log alice in over the API: %d", st)
		}
		if st, body := apptest.Upload(t, p.base, tok.AccessToken, apk); st != 201 {
			t.Fatalf("upload: %d %s", st, body)
		}
		alice.open("/console/phones/" + phoneID)
		alice.wait("uploaded app offered", `document.querySelectorAll("#install-app option").length === 2`, 15*time.Second)
		appID := eval[string](alice, `document.querySelectorAll("#install-app option")[1].value`)
		alice.do("install the app",
			chromedp.SetValue(chromedp.CSS(`#install-app`), appID),
			chromedp.Click(chromedp.CSS(`#install-form button`)))
		alice.wait("app installed", `document.querySelector('#device-apps tr[data-package="org.example.console"][data-state="installed"]') !== null`, 60*time.Second)
		alice.noError("install an app")
		alice.screenshot("phone-app-installed")
	}

	// Another user sees neither the phone in the list nor its page.
	bob := newTab(t, ctx, p.base, "bob")
	bob.signUp("bob", password)
	bob.open("/console/phones")
	bob.wait("bob's empty list", `!document.querySelector("#phones-empty").hidden`, 10*time.Second)
	if n := eval[int](bob, `document.querySelectorAll("#phones tbody tr").length`); n != 0 {
		bob.fail("bob's list", fmt.Errorf("bob sees %d phones", n))
	}
	bob.open("/console/phones/" + phoneID)
	bob.wait("alice's phone refused", `!document.querySelector("#flash").hidden`, 10*time.Second)
	if msg := eval[string](bob, `document.querySelector("#flash").textContent + "|" + document.querySelector("#phone-name").textContent`); strings.Contains(msg, "alice-phone") {
		bob.fail("alice's phone refused", fmt.Errorf("bob's page shows %q", msg))
	}

	// Alice deletes the phone, confirming in the dialog.
	alice.do("delete", chromedp.Click(chromedp.CSS(`.actions [data-act="delete"]`)))
	alice.wait("confirmation asked", `document.querySelector("#confirm").open`, 5*time.Second)
	alice.do("confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	alice.wait("back to the list", `location.pathname === "/console/phones"`, 15*time.Second)
	// The new page's list must have loaded (an empty tbody before that
	// proves nothing), and its session refresh must have ended: leaving the
	// page while the rotated cookie is on its way would present the old one
	// next, which the platform takes for a stolen token.
	alice.wait("phone gone", `document.querySelector("#who").textContent === "alice" && (!document.querySelector("#phones-empty").hidden || document.querySelector('#phones tr[data-state="deleting"]') !== null)`, 30*time.Second)
	alice.noError("delete")

	// Every page of the console, for a user and for an administrator.
	pages := []string{"/console/", "/console/plans", "/console/phones"}
	for _, pg := range []struct{ page, route string }{{"/console/apps", "GET /api/v1/apps"}, {"/console/notifications", "GET /api/v1/notifications"}, {"/console/webhooks", "GET /api/v1/webhooks"}} {
		if servesRoute(pg.route) {
			pages = append(pages, pg.page)
		}
	}
	for _, pg := range pages {
		alice.open(pg)
		alice.wait("page "+pg+" loaded", `document.querySelector("#who").textContent === "alice"`, 10*time.Second)
		alice.do("settle", chromedp.Sleep(500*time.Millisecond))
		alice.noError("page " + pg)
	}
	root := newTab(t, ctx, p.base, "admin")
	root.logIn("admin", deviceAdminPassword)
	root.open("/console/admin")
	root.wait("admin page", `document.querySelectorAll("#users tbody tr").length >= 3 && document.querySelectorAll("#nodes tbody tr").length >= 1`, 15*time.Second)
	root.noError("admin page")
	root.screenshot("admin")
	for _, b := range []*tab{alice, bob, root} {
		// Bob asked for alice's phone: its 404 is the refusal checked above.
		errs := slices.DeleteFunc(b.consoleErrors(), func(e string) bool {
			return b == bob && strings.Contains(e, "status of 404") && strings.Contains(e, "/api/v1/devices/"+phoneID+")")
		})
		if len(errs) > 0 {
			t.Errorf("%s's console reported errors: %q", b.who, errs)
		}
	}

	// A cookie-session call without the CSRF header is refused; with it, it
	// goes through (the session cookie is there).
	without := eval[string](alice, `fetch("/api/v1/auth/refresh", {method: "POST", headers: {"X-Session": "cookie", "Content-Type": "application/json"}, body: "{}"}).then(r => r.json().then(b => r.status + " " + (b.error ? b.error.code : "")))`)
	if without != "403 forbidden" {
		t.Errorf("refresh over the cookie without the CSRF header = %q, want 403 forbidden", without)
	}
	with := eval[int](alice, `fetch("/api/v1/auth/refresh", {method: "POST", headers: {"X-Session": "cookie", "Content-Type": "application/json", "X-CSRF-Token": document.cookie.split("; ").find(c => c.startsWith("cp_csrf=")).slice(8)}, body: "{}"}).then(r => r.status)`)
	if with != 200 {
		t.Errorf("refresh over the cookie with the CSRF header = %d, want 200", with)
	}

	// Log out ends the session: the next page goes to the login.
	alice.open("/console/")
	alice.wait("home", `document.querySelector("#who").textContent === "alice"`, 10*time.Second)
	alice.do("log out", chromedp.Click(chromedp.CSS(`#logout`)))
	alice.wait("logged out", `location.pathname === "/console/login"`, 10*time.Second)
	alice.open("/console/phones")
	alice.wait("no session", `location.pathname === "/console/login"`, 10*time.Second)
}

// lastTapColour is the colour the phone stand-in marks its last tap with.
var lastTapColour = color.RGBA{0xff, 0xd2, 0x3f, 0xff}

// tapMarked reports whether a screenshot of the phone, taken now through the
// API, shows the stand-in's mark of a last tap.
func tapMarked(t *testing.T, base, token, phoneID string) bool {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/v1/devices/"+phoneID+"/screenshot", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("screenshot: %d", resp.StatusCode)
	}
	img, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == lastTapColour {
				return true
			}
		}
	}
	return false
}
