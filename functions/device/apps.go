package device

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/internalapi"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// InstallState is where an app on a device is.
//
//	installing → installed | failed      (device-runtime's fact)
//	installed, failed → uninstalling → (gone)
//
// An install of another version, or again after a failure, goes back to
// installing.
type InstallState string

// The states of an installation.
const (
	InstallInstalling   InstallState = "installing"
	InstallInstalled    InstallState = "installed"
	InstallFailed       InstallState = "failed"
	InstallUninstalling InstallState = "uninstalling"
)

// Installation is an app on a device as the API shows it. Reason explains a
// failed install (see the AppReason constants).
type Installation struct {
	DeviceID    string       `json:"device_id"`
	Package     string       `json:"package"`
	AppID       string       `json:"app_id"`
	VersionCode int64        `json:"version_code"`
	VersionName string       `json:"version_name"`
	Label       string       `json:"label"`
	State       InstallState `json:"state"`
	Reason      string       `json:"reason,omitempty"`
	RequestedAt time.Time    `json:"requested_at"`
	UpdatedAt   time.Time    `json:"updated_at"`

	userID string
}

// InstallRequest is the body of an install.
type InstallRequest struct {
	AppID string `json:"app_id"`
}

// AppDownload is what the app context answers about one user's app: where
// to fetch it (a presigned URL, valid until ExpiresAt) and how to check it.
type AppDownload struct {
	AppID       string    `json:"app_id"`
	UserID      string    `json:"user_id"`
	Package     string    `json:"package"`
	VersionCode int64     `json:"version_code"`
	VersionName string    `json:"version_name"`
	Label       string    `json:"label"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	URL         string    `json:"url"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Apps is the app context as the device context uses it. Download answers
// apierr NotFound for an app the user does not own (or none) and apierr
// Unavailable when the app context cannot be reached.
type Apps interface {
	Download(ctx context.Context, userID, appID string) (AppDownload, error)
}

// AppsClient calls the app context's internal route
// GET /internal/v1/users/{user_id}/apps/{app_id}/download. Safe for
// concurrent use.
type AppsClient struct{ api *internalapi.Client }

// NewAppsClient returns an AppsClient of the API at baseURL through c,
// which is expected to carry a service token for the app context
// (servicetoken.Client); it fails on a base URL that is not absolute
// http(s) or a nil client.
func NewAppsClient(baseURL string, c *http.Client) (*AppsClient, error) {
	api, err := internalapi.New("CLOUDPHONE_APP_URL", baseURL, c, "the app service")
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return &AppsClient{api: api}, nil
}

// Download implements Apps.
func (a *AppsClient) Download(ctx context.Context, userID, appID string) (AppDownload, error) {
	var d AppDownload
	what := "download of app " + appID
	err := a.api.Call(ctx, http.MethodGet, "/internal/v1/users/"+url.PathEscape(userID)+"/apps/"+url.PathEscape(appID)+"/download",
		nil, &d, what)
	var r *internalapi.Refusal
	switch {
	case errors.As(err, &r) && r.Status == http.StatusNotFound:
		return AppDownload{}, apierr.Wrap(apierr.NotFound, r, "app not found")
	case r != nil:
		return AppDownload{}, a.api.Unavailable(r)
	case err != nil:
		return AppDownload{}, err
	case d.URL == "" || d.Package == "" || len(d.SHA256) != 64 || d.Size <= 0:
		return AppDownload{}, a.api.Unavailable(fmt.Errorf("%s: unusable answer %+v", what, d))
	}
	return d, nil
}

// packagePattern is an Android package name.
var packagePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)

// errAppNotInstalled answers an uninstall of a package the device does not
// have.
func errAppNotInstalled() error {
	return apierr.New(apierr.NotFound, "app not installed on this device")
}

const selectInstallations = `SELECT device_id::text, package, app_id::text, version_code, version_name, label, state,
    reason, requested_at, updated_at, user_id::text FROM device_apps`

func scanInstallation(row pgx.Row) (Installation, error) {
	var in Installation
	err := row.Scan(&in.DeviceID, &in.Package, &in.AppID, &in.VersionCode, &in.VersionName, &in.Label, &in.State,
		&in.Reason, &in.RequestedAt, &in.UpdatedAt, &in.userID)
	return in, err
}

// lockInstallation returns device's installation of pkg locked for tx; ok
// is false when there is none.
func lockInstallation(ctx context.Context, tx pgx.Tx, deviceID, pkg string) (in Installation, ok bool, err error) {
	in, err = scanInstallation(tx.QueryRow(ctx, selectInstallations+` WHERE device_id = $1 AND package = $2 FOR UPDATE`,
		deviceID, pkg))
	if errors.Is(err, pgx.ErrNoRows) {
		return Installation{}, false, nil
	}
	if err != nil {
		return Installation{}, false, fmt.Errorf("lock app %s on device %s: %w", pkg, deviceID, err)
	}
	return in, true, nil
}

const saveInstallation = `
INSERT INTO device_apps (device_id, package, user_id, app_id, version_code, version_name, label, state, reason,
    requested_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
ON CONFLICT (device_id, package) DO UPDATE SET
    user_id = EXCLUDED.user_id, app_id = EXCLUDED.app_id, version_code = EXCLUDED.version_code,
    version_name = EXCLUDED.version_name, label = EXCLUDED.label, state = EXCLUDED.state, reason = EXCLUDED.reason,
    requested_at = EXCLUDED.requested_at, updated_at = now()
RETURNING updated_at`

func (in *Installation) save(ctx context.Context, tx pgx.Tx) error {
	err := tx.QueryRow(ctx, saveInstallation, in.DeviceID, in.Package, in.userID, in.AppID, in.VersionCode,
		in.VersionName, in.Label, in.State, in.Reason, in.RequestedAt).Scan(&in.UpdatedAt)
	if err != nil {
		return fmt.Errorf("save app %s on device %s: %w", in.Package, in.DeviceID, err)
	}
	return nil
}

// ownDevice is device id when p owns it; otherwise apierr NotFound (an admin
// acts on phones only as their owner would, through the owner's apps).
func (s *Service) ownDevice(ctx context.Context, p auth.Principal, id string) (Device, error) {
	d, err := s.Get(ctx, p, id)
	if err != nil {
		return Device{}, err
	}
	if d.UserID != p.UserID {
		return Device{}, errNotFound()
	}
	return d, nil
}

// InstallApp asks for p's app req.AppID to be installed on p's running
// device id and answers the installation (state installing). The app's
// download (a presigned URL, valid 15 minutes, its SHA-256 and size) comes
// from the app context; the install command carrying it is written to the
// outbox with the installation, for device-runtime. Installs are idempotent
// per (device, package, version code): when that version is already
// installing or installed, nothing is sent and the installation is answered
// as it is. Another user's device or app is apierr NotFound; a device that
// is not running is apierr Conflict; an app context that cannot be reached
// is apierr Unavailable.
func (s *Service) InstallApp(ctx context.Context, p auth.Principal, id string, req InstallRequest) (Installation, error) {
	if !p.HasPermission("device:operate") {
		return Installation{}, apierr.New(apierr.Forbidden, "you may not install apps on devices")
	}
	d, err := s.ownDevice(ctx, p, id)
	if err != nil {
		return Installation{}, err
	}
	if !validate.UUID(req.AppID) {
		return Installation{}, apierr.New(apierr.Invalid, "app_id: not an app id")
	}
	if d.State != StateRunning {
		return Installation{}, conflict(&d, "install an app on")
	}
	if s.apps == nil {
		return Installation{}, apierr.New(apierr.Unavailable, "app installs are not available on this platform")
	}
	dl, err := s.apps.Download(ctx, d.UserID, strings.ToLower(req.AppID))
	if err != nil {
		return Installation{}, err
	}
	if !packagePattern.MatchString(dl.Package) {
		return Installation{}, fmt.Errorf("app %s names package %q", dl.AppID, dl.Package)
	}
	var out Installation
	_, err = s.operate(ctx, p, id, "device:operate", func(tx pgx.Tx, d *Device) error {
		if d.State != StateRunning {
			return conflict(d, "install an app on")
		}
		in, ok, err := lockInstallation(ctx, tx, d.ID, dl.Package)
		if err != nil {
			return err
		}
		if ok && in.VersionCode == dl.VersionCode && in.State.in(InstallInstalling, InstallInstalled) {
			out = in
			return nil
		}
		in = Installation{DeviceID: d.ID, Package: dl.Package, AppID: dl.AppID, VersionCode: dl.VersionCode,
			VersionName: dl.VersionName, Label: dl.Label, State: InstallInstalling, RequestedAt: s.now().UTC(),
			userID: d.UserID}
		if err := in.save(ctx, tx); err != nil {
			return err
		}
		out = in
		return appCommand(ctx, tx, deviceevents.EventAppInstallRequested, d, deviceevents.AppCommand{AppID: dl.AppID, Package: dl.Package,
			VersionCode: dl.VersionCode, URL: dl.URL, SHA256: dl.SHA256, Size: dl.Size})
	})
	return out, err
}

// UninstallApp asks for package pkg to be removed from p's running device id
// and answers the installation (state uninstalling). Asking again sends the
// command again (removing what is gone is done already), so an uninstall
// whose command failed can be retried. A package the device does not
// have is apierr NotFound, like another user's device; a device that is not
// running is apierr Conflict.
func (s *Service) UninstallApp(ctx context.Context, p auth.Principal, id, pkg string) (Installation, error) {
	if !packagePattern.MatchString(pkg) || len(pkg) > 255 {
		return Installation{}, errAppNotInstalled()
	}
	var out Installation
	_, err := s.operate(ctx, p, id, "device:operate", func(tx pgx.Tx, d *Device) error {
		in, ok, err := lockInstallation(ctx, tx, d.ID, pkg)
		if err != nil {
			return err
		}
		if !ok {
			return errAppNotInstalled()
		}
		if d.State != StateRunning {
			return conflict(d, "uninstall an app from")
		}
		in.State, in.Reason, in.RequestedAt = InstallUninstalling, "", s.now().UTC()
		if err := in.save(ctx, tx); err != nil {
			return err
		}
		out = in
		return appCommand(ctx, tx, deviceevents.EventAppUninstallRequested, d, deviceevents.AppCommand{AppID: in.AppID, Package: in.Package,
			VersionCode: in.VersionCode})
	})
	return out, err
}

// InstallationList is the answer of ListApps.
type InstallationList struct {
	Apps []Installation `json:"apps"`
}

// ListApps returns the apps on device id (installing, installed, failed or
// uninstalling), by package, for its owner or an admin; another user's
// device is apierr NotFound.
func (s *Service) ListApps(ctx context.Context, p auth.Principal, id string) (InstallationList, error) {
	if !p.HasPermission("device:read") && !p.HasRole("admin") {
		return InstallationList{}, apierr.New(apierr.Forbidden, "you may not read devices")
	}
	d, err := s.Get(ctx, p, id)
	if err != nil {
		return InstallationList{}, err
	}
	rows, err := s.pool.Query(ctx, selectInstallations+` WHERE device_id = $1 ORDER BY package`, d.ID)
	if err != nil {
		return InstallationList{}, fmt.Errorf("list apps of device %s: %w", d.ID, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Installation, error) { return scanInstallation(r) })
	if err != nil {
		return InstallationList{}, fmt.Errorf("list apps of device %s: %w", d.ID, err)
	}
	if list == nil {
		list = []Installation{}
	}
	return InstallationList{Apps: list}, nil
}

// ApplyAppFact turns device-runtime's fact e about an app on a device (data
// f) into the installation's state, in one transaction with e's inbox claim:
// a duplicate changes nothing. installed and install_failed settle an
// installation that is installing that version; uninstalled removes one
// that is uninstalling. A fact is ignored when it does not fit (no such
// installation, another version, another state) or is older than the
// installation's latest request. A fact without device or package is
// apierr Invalid; a database failure is a plain (retryable) error.
func (s *Service) ApplyAppFact(ctx context.Context, e event.Event, f deviceevents.AppFact) error {
	if !validate.UUID(f.DeviceID) || f.Package == "" {
		return apierr.New(apierr.Invalid, "fact %s names no device id or package", e.ID())
	}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil || !first {
			return err
		}
		in, ok, err := lockInstallation(ctx, tx, f.DeviceID, f.Package)
		if err != nil || !ok {
			return err
		}
		ignore := func(why string) error {
			s.log.InfoContext(ctx, "app fact ignored", "device_id", f.DeviceID, "package", f.Package,
				"event_type", e.Type(), "state", in.State, "why", why)
			return nil
		}
		if !f.At.IsZero() && f.At.Before(in.RequestedAt.Truncate(time.Microsecond)) {
			return ignore("it answers an earlier request")
		}
		switch e.Type() {
		case deviceevents.EventAppInstalled, deviceevents.EventAppInstallFailed:
			if in.State != InstallInstalling || in.VersionCode != f.VersionCode {
				return ignore("it does not fit the installation")
			}
			in.State, in.Reason = InstallInstalled, ""
			if e.Type() == deviceevents.EventAppInstallFailed {
				in.State, in.Reason = InstallFailed, f.Reason
			}
			return in.save(ctx, tx)
		case deviceevents.EventAppUninstalled:
			if in.State != InstallUninstalling {
				return ignore("it does not fit the installation")
			}
			_, err := tx.Exec(ctx, `DELETE FROM device_apps WHERE device_id = $1 AND package = $2`, f.DeviceID, f.Package)
			return err
		}
		return apierr.New(apierr.Invalid, "%s is not an app fact", e.Type())
	})
}

func (st InstallState) in(states ...InstallState) bool {
	for _, x := range states {
		if st == x {
			return true
		}
	}
	return false
}

// appCommand writes an app command about d to the outbox within tx.
func appCommand(ctx context.Context, tx pgx.Tx, typ string, d *Device, c deviceevents.AppCommand) error {
	c.SchemaVersion, c.DeviceID, c.UserID, c.NodeID, c.DockerHost, c.ADBPort = 1, d.ID, d.UserID, d.NodeID, d.dockerHost, d.ADBPort
	e, err := events.New(ctx, typ, SourceDevices, d.ID, c)
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, e)
}
