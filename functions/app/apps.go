package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/app/appevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/objectstore"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// App is one user's uploaded APK.
type App struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Manifest
	Filename  string    `json:"filename"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// apkPrefix is where APKs are kept in the bucket, one object per upload that
// brought new bytes (apks/<upload id>); the objects table maps each SHA-256 to
// its one object.
const apkPrefix = "apks/"

// cleanupTimeout bounds the removal of an upload's object after the request
// ended.
const cleanupTimeout = 30 * time.Second

// Upload stores the APK that body yields for userID and records it. The bytes
// are streamed to a new object while their SHA-256 is computed (nothing on
// local disk): when size (the length the request announced; ≤ 0 unknown) is
// known, in one PutObject with no buffer; otherwise in parts of
// objectstore.PartSize, at most three in memory. The
// manifest is read from the stored object by ranged reads. Objects are keyed
// by digest in the objects table: when those bytes were stored before, the
// app refers to that object and the new one is removed, so the same bytes
// are kept once; nothing is copied. Errors: apierr TooLarge over MaxAPKBytes
// (the rest of body is not read), Invalid for an empty file or one that is
// not a valid APK, Conflict when userID already has this package at this
// version code, Unavailable when the store cannot be reached. On any error
// nothing is recorded and the new object is removed.
func (s *Service) Upload(ctx context.Context, userID, filename string, body io.Reader, size int64) (App, error) {
	key := apkPrefix + events.NewID()
	keep := false
	defer func() {
		if keep {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := s.store.Delete(cctx, key); err != nil {
			s.log.Warn("remove an upload's object", "key", key, "error", err)
		}
	}()
	h := sha256.New()
	size, err := s.store.PutSized(ctx, key, io.TeeReader(body, h), size, s.cfg.MaxAPKBytes)
	if err != nil {
		return App{}, s.putError(err)
	}
	if size == 0 {
		return App{}, apierr.New(apierr.Invalid, "file: the file is empty")
	}
	m, err := ParseAPK(s.store.ReaderAt(ctx, key, size), size, s.limits)
	if err != nil {
		return App{}, storeError(err, "read the uploaded APK")
	}
	digest := hex.EncodeToString(h.Sum(nil))
	a := App{UserID: userID, Manifest: m, Filename: filename, SHA256: digest, Size: size}
	var stored string
	err = db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		// The object row is locked from here to commit: a concurrent delete
		// of the last app with these bytes waits, or has finished (and then
		// this upload's object becomes the digest's).
		if err := tx.QueryRow(ctx, `INSERT INTO objects (sha256, key, size) VALUES ($1, $2, $3)
ON CONFLICT (sha256) DO UPDATE SET size = objects.size
RETURNING key`, digest, key, size).Scan(&stored); err != nil {
			return fmt.Errorf("record object %s: %w", digest, err)
		}
		err := tx.QueryRow(ctx, `INSERT INTO apps (user_id, package, version_code, version_name, min_sdk, target_sdk,
  permissions, launchable_activity, label, filename, sha256, size)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (user_id, package, version_code) DO NOTHING
RETURNING id, created_at`, userID, m.Package, m.VersionCode, m.VersionName, m.MinSDK, m.TargetSDK,
			m.Permissions, m.LaunchableActivity, m.Label, filename, digest, size).Scan(&a.ID, &a.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.New(apierr.Conflict, "you already uploaded %s version code %d", m.Package, m.VersionCode)
		}
		if err != nil {
			return fmt.Errorf("record app %s %d of %s: %w", m.Package, m.VersionCode, userID, err)
		}
		e, err := events.New(ctx, appevents.EventUploaded, SourceApps, a.ID, appevents.Uploaded{
			AppID: a.ID, UserID: userID, Package: m.Package, VersionCode: m.VersionCode, SHA256: digest, Size: size,
		})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, e)
	})
	if err != nil {
		return App{}, err
	}
	keep = stored == key
	return a, nil
}

// putError maps a failure of streaming the upload to the store.
func (s *Service) putError(err error) error {
	var tooLarge *http.MaxBytesError
	var readErr *objectstore.ReadError
	switch {
	case errors.Is(err, objectstore.ErrTooLarge) || errors.As(err, &tooLarge):
		return apierr.New(apierr.TooLarge, "file: an APK may be at most %d bytes", s.cfg.MaxAPKBytes)
	case errors.As(err, &readErr):
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return ae
		}
		return apierr.Wrap(apierr.Invalid, err, "file: the upload was interrupted")
	}
	return storeError(err, "store the upload")
}

// storeError maps an unreachable store to apierr Unavailable and leaves other
// errors as they are.
func storeError(err error, op string) error {
	if errors.Is(err, objectstore.ErrUnavailable) {
		return apierr.Wrap(apierr.Unavailable, fmt.Errorf("%s: %w", op, err), "app storage is unavailable, try again shortly")
	}
	return err
}

const appColumns = `id, user_id, package, version_code, version_name, min_sdk, target_sdk, permissions,
  launchable_activity, label, filename, sha256, size, created_at`

func scanApp(row pgx.Row) (App, error) {
	var a App
	err := row.Scan(&a.ID, &a.UserID, &a.Package, &a.VersionCode, &a.VersionName, &a.MinSDK, &a.TargetSDK,
		&a.Permissions, &a.LaunchableActivity, &a.Label, &a.Filename, &a.SHA256, &a.Size, &a.CreatedAt)
	return a, err
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Get returns userID's app id; another user's app, or none, is apierr
// NotFound.
func (s *Service) Get(ctx context.Context, userID, id string) (App, error) {
	if !uuidPattern.MatchString(id) || !uuidPattern.MatchString(userID) {
		return App{}, apierr.New(apierr.NotFound, "app not found")
	}
	a, err := scanApp(s.pool.QueryRow(ctx, `SELECT `+appColumns+` FROM apps WHERE id = $1 AND user_id = $2`, id, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return App{}, apierr.New(apierr.NotFound, "app not found")
	}
	if err != nil {
		return App{}, fmt.Errorf("get app %s: %w", id, err)
	}
	return a, nil
}

// Page is one page of a user's apps, newest first.
type Page struct {
	Apps       []App  `json:"apps"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// List returns a page of userID's apps, newest first: limit (1–MaxPageSize,
// 0 = DefaultPageSize) apps after cursor (a next_cursor).
func (s *Service) List(ctx context.Context, userID string, limit int, cursor string) (Page, error) {
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return Page{}, apierr.New(apierr.Invalid, "limit: must be 1 to %d", MaxPageSize)
	}
	if cursor != "" && !uuidPattern.MatchString(cursor) {
		return Page{}, apierr.New(apierr.Invalid, "cursor: not a cursor this API returned")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+appColumns+` FROM apps
WHERE user_id = $1 AND ($2 = '' OR (created_at, id) < (SELECT created_at, id FROM apps WHERE id = NULLIF($2, '')::uuid))
ORDER BY created_at DESC, id DESC LIMIT $3`, userID, cursor, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("list apps of %s: %w", userID, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (App, error) { return scanApp(r) })
	if err != nil {
		return Page{}, fmt.Errorf("list apps of %s: %w", userID, err)
	}
	page := Page{Apps: list}
	if len(list) > limit {
		page.Apps = list[:limit]
		page.NextCursor = list[limit-1].ID
	}
	if page.Apps == nil {
		page.Apps = []App{}
	}
	return page, nil
}

// Delete removes userID's app id; another user's app, or none, is apierr
// NotFound. When no other app has the same bytes, the stored object goes too,
// inside the same transaction (with the object row locked, so a concurrent
// upload of the same bytes waits and then stores them again): when the store
// cannot be reached the delete fails with apierr Unavailable and nothing
// changes.
func (s *Service) Delete(ctx context.Context, userID, id string) error {
	if !uuidPattern.MatchString(id) {
		return apierr.New(apierr.NotFound, "app not found")
	}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		var d appevents.Deleted
		var digest string
		err := tx.QueryRow(ctx, `DELETE FROM apps WHERE id = $1 AND user_id = $2
RETURNING id, user_id, package, version_code, sha256`, id, userID).Scan(&d.AppID, &d.UserID, &d.Package, &d.VersionCode, &digest)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.New(apierr.NotFound, "app not found")
		}
		if err != nil {
			return fmt.Errorf("delete app %s: %w", id, err)
		}
		var key string
		var referenced bool
		err = tx.QueryRow(ctx, `SELECT key, EXISTS (SELECT 1 FROM apps WHERE sha256 = $1)
FROM objects WHERE sha256 = $1 FOR UPDATE`, digest).Scan(&key, &referenced)
		if err != nil {
			return fmt.Errorf("lock object %s: %w", digest, err)
		}
		if !referenced {
			if err := s.store.Delete(ctx, key); err != nil {
				return storeError(err, "delete the stored APK")
			}
			if _, err := tx.Exec(ctx, `DELETE FROM objects WHERE sha256 = $1`, digest); err != nil {
				return fmt.Errorf("delete object %s: %w", digest, err)
			}
		}
		e, err := events.New(ctx, appevents.EventDeleted, SourceApps, id, d)
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, e)
	})
}

// Download is what the device context needs to install an app: where to
// fetch it (a presigned URL, valid until ExpiresAt) and how to check it.
type Download struct {
	AppID       string    `json:"app_id"`
	UserID      string    `json:"user_id"`
	Package     string    `json:"package"`
	VersionCode int64     `json:"version_code"`
	VersionName string    `json:"version_name"`
	Label       string    `json:"label"`
	Object      string    `json:"object"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	URL         string    `json:"url"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Download returns the download of userID's app id, with a URL valid for
// Config.DownloadTTL. Another user's app, or none, is apierr NotFound.
func (s *Service) Download(ctx context.Context, userID, id string) (Download, error) {
	a, err := s.Get(ctx, userID, id)
	if err != nil {
		return Download{}, err
	}
	var key string
	if err := s.pool.QueryRow(ctx, `SELECT key FROM objects WHERE sha256 = $1`, a.SHA256).Scan(&key); err != nil {
		return Download{}, fmt.Errorf("object of app %s: %w", id, err)
	}
	expires := time.Now().Add(s.cfg.DownloadTTL).UTC()
	url, err := s.store.PresignGet(ctx, key, s.cfg.DownloadTTL)
	if err != nil {
		return Download{}, fmt.Errorf("presign app %s: %w", id, err)
	}
	return Download{
		AppID: a.ID, UserID: a.UserID, Package: a.Package, VersionCode: a.VersionCode, VersionName: a.VersionName,
		Label: a.Label, Object: key, SHA256: a.SHA256, Size: a.Size, URL: url, ExpiresAt: expires,
	}, nil
}
