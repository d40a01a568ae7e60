package deviceruntime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
)

var (
	validPackage = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)
	validDigest  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// appCommand decodes the data of an app command (op install or uninstall)
// and checks it: a package name; for an install an http(s) URL, a SHA-256
// and a size within Config.MaxAPKBytes.
func (f *Function) appCommand(op string, e event.Event) (deviceevents.AppCommand, error) {
	var c deviceevents.AppCommand
	if err := e.DataAs(&c); err != nil {
		return c, fmt.Errorf("decode the app command: %w", err)
	}
	if !validPackage.MatchString(c.Package) || len(c.Package) > 255 {
		return c, fmt.Errorf("package %q is not a package name", c.Package)
	}
	if op == OpUninstall {
		return c, nil
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return c, errors.New("install needs an http(s) url")
	case !validDigest.MatchString(c.SHA256):
		return c, errors.New("install needs sha256, 64 lower-case hex digits")
	case c.Size <= 0 || c.Size > f.cfg.MaxAPKBytes:
		return c, fmt.Errorf("install needs a size in 1..%d", f.cfg.MaxAPKBytes)
	}
	return c, nil
}

// downloadError is a failure to fetch an APK that may pass (the store
// unreachable or failing, the transfer cut).
type downloadError struct{ err error }

func (e downloadError) Error() string { return "download the APK: " + e.err.Error() }
func (e downloadError) Unwrap() error { return e.err }

// executeApp carries out an install or uninstall on the device's phone. It
// needs the device running (an install on a phone that is not is
// install_failed device_not_running). A failure that may pass (the phone's
// ADB, the store) is retried like the other commands' and, when the
// attempts run out, reported install_failed (download_failed or
// adb_failed). An uninstall reports uninstalled, also when the package was
// not there; its failures are logged with the command, with no fact.
func (f *Function) executeApp(ctx context.Context, q *queued, dev *device) *outcome {
	o := &outcome{}
	c, err := f.appCommand(q.Op, q.Event)
	if err != nil {
		o.failed, o.reason = true, err.Error()
		return o
	}
	fact := func(typ, reason string) {
		o.reports = append(o.reports, finding{Type: typ, Data: deviceevents.RuntimeReport{DeviceID: c.DeviceID}, App: &deviceevents.AppFact{
			SchemaVersion: 1, DeviceID: c.DeviceID, UserID: c.UserID, AppID: c.AppID, Package: c.Package,
			VersionCode: c.VersionCode, Reason: reason, At: time.Now().UTC(),
		}})
	}
	fail := func(reason, detail string) {
		o.failed, o.reason = true, reason
		if detail != "" {
			o.reason += ": " + detail
		}
		if q.Op == OpInstall {
			fact(deviceevents.EventAppInstallFailed, reason)
		}
	}
	o.giveUp = func(err error) {
		reason := deviceevents.AppReasonADBFailed
		if errors.As(err, new(downloadError)) {
			reason = deviceevents.AppReasonDownloadFailed
		}
		fail(reason, fmt.Sprintf("%v (gave up after %d attempts)", err, q.Attempts+1))
	}
	if dev == nil || dev.Desired != desiredRunning || dev.Observed != observedRunning {
		fail(deviceevents.AppReasonDeviceNotRunning, "")
		return o
	}
	ec, err := f.engines.client(dev.DockerHost, dev.NodeID)
	if err != nil {
		o.retry = err
		return o
	}
	actx, cancel := context.WithTimeout(ctx, f.cfg.InstallTimeout)
	defer cancel()
	phone, err := adb.Dial(actx, f.adbAddr(ec, dev.ADBPort))
	if err != nil {
		o.retry = fmt.Errorf("connect to the phone's ADB: %w", err)
		return o
	}
	defer phone.Close()
	if q.Op == OpUninstall {
		reason, err := uninstall(actx, phone, c.Package)
		switch {
		case err != nil:
			o.retry = err
		case reason != "":
			fail(reason, "")
		default:
			fact(deviceevents.EventAppUninstalled, "")
		}
		return o
	}
	reason, err := f.install(actx, phone, c)
	switch {
	case err != nil:
		o.retry = err
	case reason != "":
		fail(reason, "")
	default:
		fact(deviceevents.EventAppInstalled, "")
	}
	return o
}

// install downloads c's APK, pushing it to the phone while hashing it, checks
// its size and SHA-256, installs it with the package manager and checks that
// the package is listed. It returns the reason of a failure that will not
// pass, or an error for one that may.
func (f *Function) install(ctx context.Context, phone *adb.Client, c deviceevents.AppCommand) (reason string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return deviceevents.AppReasonDownloadFailed, nil
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return "", downloadError{err}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return "", downloadError{fmt.Errorf("status %d", resp.StatusCode)}
	default:
		// An expired URL (403), an object that is gone (404): fetching
		// again will not change it.
		return deviceevents.AppReasonDownloadFailed, nil
	}
	if resp.ContentLength >= 0 && resp.ContentLength != c.Size {
		return deviceevents.AppReasonDigestMismatch, nil
	}
	remote := "/data/local/tmp/cloudphone-" + c.SHA256[:16] + ".apk"
	h := sha256.New()
	// One byte more than the size, so that a longer body is seen.
	body := &countingReader{r: io.LimitReader(resp.Body, c.Size+1)}
	err = phone.Push(ctx, io.TeeReader(body, h), c.Size, remote, 0o644)
	if body.err != nil {
		return "", downloadError{body.err}
	}
	if err != nil {
		if body.n != c.Size && ctx.Err() == nil {
			// The store sent another number of bytes than the app has.
			return deviceevents.AppReasonDigestMismatch, nil
		}
		return "", fmt.Errorf("push the APK to the phone: %w", err)
	}
	if hex.EncodeToString(h.Sum(nil)) != c.SHA256 {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = phone.Shell(cleanup, "rm -f "+adb.Quote(remote))
		return deviceevents.AppReasonDigestMismatch, nil
	}
	if err := phone.InstallPushed(ctx, remote); err != nil {
		var ie *adb.InstallError
		if errors.As(err, &ie) {
			return ie.Reason, nil
		}
		return "", err
	}
	pkgs, err := phone.Packages(ctx)
	if err != nil {
		return "", err
	}
	if !slices.Contains(pkgs, c.Package) {
		return deviceevents.AppReasonNotListed, nil
	}
	return "", nil
}

// uninstall removes pkg from the phone; a package that is not there is
// removed already. It returns the package manager's reason when it refuses,
// or an error for a failure that may pass.
func uninstall(ctx context.Context, phone *adb.Client, pkg string) (reason string, err error) {
	pkgs, err := phone.Packages(ctx)
	if err != nil {
		return "", err
	}
	if !slices.Contains(pkgs, pkg) {
		return "", nil
	}
	err = phone.Uninstall(ctx, pkg)
	var ie *adb.InstallError
	if err != nil && !errors.As(err, &ie) {
		return "", err
	}
	if pkgs, err = phone.Packages(ctx); err != nil {
		return "", err
	}
	if slices.Contains(pkgs, pkg) {
		if ie != nil {
			return ie.Reason, nil
		}
		return "still listed after pm uninstall", nil
	}
	return "", nil
}

// countingReader counts what r yields and keeps its first error other than
// io.EOF.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && c.err == nil {
		c.err = err
	}
	return n, err
}
