// Package appapps is the app-apps function: users upload APKs (multipart, field
// "file"), list, read and delete their own apps.
package appapps

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strings"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Name is the function's name in the catalog.
const Name = "app-apps"

// The function's routes.
const (
	RouteUpload = "POST /api/v1/apps"
	RouteList   = "GET /api/v1/apps"
	RouteGet    = "GET /api/v1/apps/{id}"
	RouteDelete = "DELETE /api/v1/apps/{id}"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteUpload, RouteList, RouteGet, RouteDelete}

// FileField is the multipart field that carries the APK.
const FileField = "file"

// multipartSlack is what a multipart body may carry beyond the APK itself
// (boundaries, headers, small fields) before it is refused unread.
const multipartSlack = 1 << 20

// apkTypes are the part content types an APK may come with.
var apkTypes = map[string]bool{
	"": true,
	"application/vnd.android.package-archive": true,
	"application/octet-stream":                true,
	"application/zip":                         true,
	"application/x-zip-compressed":            true,
	"application/java-archive":                true,
}

// Function answers Routes for the signed-in caller. RouteUpload (app:upload)
// takes a multipart/form-data body whose "file" part is the APK and answers
// 201 {app}; 415 for another content type, 413 over the size limit (a body
// that says it is larger is refused before it is read), 400 for an invalid
// APK, 409 for a package and version code the caller already uploaded, 503
// when the storage is down. RouteList (?limit, ?cursor) and RouteGet
// (app:read) and RouteDelete (app:delete, 204) see only the caller's own
// apps; another user's app is 404. Safe for concurrent use.
type Function struct {
	svc *app.Service
	max int64
	mux *http.ServeMux
}

// New returns the function over svc, checking tokens with svc's verifier.
// maxAPK is the largest APK accepted (app.Config.MaxAPKBytes). It panics when
// an argument is missing.
func New(svc *app.Service, maxAPK int64, log *slog.Logger) *Function {
	if svc == nil || log == nil || maxAPK <= 0 {
		panic("appapps: New needs an app.Service, a positive APK limit and a logger")
	}
	f := &Function{svc: svc, max: maxAPK, mux: httpjson.NewMux(log)}
	require := auth.Require(svc.Verifier(), log)
	f.mux.Handle(RouteUpload, require(auth.Route(auth.Access{Permission: app.PermUpload}, log, f.upload)))
	f.mux.Handle(RouteList, require(auth.Route(auth.Access{Permission: app.PermRead}, log, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		limit, err := httpjson.Limit(r, app.MaxPageSize)
		if err != nil {
			return 0, nil, err
		}
		page, err := svc.List(ctx, p.UserID, limit, r.URL.Query().Get("cursor"))
		return http.StatusOK, page, err
	})))
	f.mux.Handle(RouteGet, require(auth.Route(auth.Access{Permission: app.PermRead}, log, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		a, err := svc.Get(ctx, p.UserID, r.PathValue("id"))
		return http.StatusOK, One{App: a}, err
	})))
	f.mux.Handle(RouteDelete, require(auth.Route(auth.Access{Permission: app.PermDelete}, log, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		return http.StatusNoContent, nil, svc.Delete(ctx, p.UserID, r.PathValue("id"))
	})))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// upload streams the "file" part to the service.
func (f *Function) upload(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return 0, nil, apierr.New(apierr.UnsupportedMediaType, "Content-Type must be multipart/form-data with the APK in the %q field", FileField)
	}
	if r.ContentLength > f.max+multipartSlack {
		return 0, nil, apierr.New(apierr.TooLarge, "file: an APK may be at most %d bytes", f.max)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return 0, nil, apierr.New(apierr.Invalid, "the body is not multipart/form-data: no boundary")
	}
	// The multipart reader works in its own 4 KiB buffer unless it is given
	// a larger *bufio.Reader, which it then uses as it is: the part is read
	// in pieces of up to bodyBuffer, a boundary search and a copy per piece
	// instead of per 4 KiB of a 200 MiB body.
	br := bufio.NewReaderSize(http.MaxBytesReader(nil, r.Body, f.max+multipartSlack), bodyBuffer)
	// The first part's headers, to tell the APK's size; a read error here
	// comes again from the multipart reader.
	head, _ := br.Peek(headMax)
	head = bytes.Clone(head)
	mr := multipart.NewReader(br, boundary)
	for first := true; ; first = false {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return 0, nil, apierr.New(apierr.Invalid, "file: the %q field with the APK is missing", FileField)
		}
		if err != nil {
			return 0, nil, bodyError(err)
		}
		if part.FormName() != FileField {
			// Other fields are not used; they count toward the body limit.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return 0, nil, bodyError(err)
			}
			continue
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if !apkTypes[ct] {
			return 0, nil, apierr.New(apierr.UnsupportedMediaType, "file: an APK is application/vnd.android.package-archive, not %s", ct)
		}
		name := path.Base(strings.ReplaceAll(part.FileName(), `\`, "/"))
		if name == "." || name == "/" || !validate.NoControlChars(name) || len(name) > 255 {
			name = "app.apk"
		}
		size := int64(-1)
		if first {
			size = announcedSize(r.ContentLength, head, boundary)
		}
		a, err := f.svc.Upload(ctx, p.UserID, name, part, size)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, One{App: a}, nil
	}
}

// bodyError maps a failure to read the request body.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return apierr.New(apierr.TooLarge, "the request body is over %d bytes", tooLarge.Limit)
	}
	return apierr.Wrap(apierr.Invalid, err, "the multipart body is malformed")
}

// announcedSize is the length of the first part's content in a multipart
// body of total bytes that starts with head, when the part is also the last
// one and the body ends "\r\n--boundary--\r\n", as browsers, curl and Go's
// multipart.Writer send a form with one file; -1 when it cannot tell. The
// store is told this size so that the APK goes up in one PutObject; a body
// framed otherwise still stores what the part holds (the store fixes the
// object up), at the cost of a server-side copy.
func announcedSize(total int64, head []byte, boundary string) int64 {
	if total <= 0 {
		return -1
	}
	i := bytes.Index(head, []byte("--"+boundary))
	if i < 0 {
		return -1
	}
	j := bytes.Index(head[i:], []byte("\r\n\r\n"))
	if j < 0 {
		return -1
	}
	n := total - int64(i+j+4) - int64(len("\r\n--"+boundary+"--\r\n"))
	if n <= 0 {
		return -1
	}
	return n
}

// headMax is how much of a body is looked at for the first part's headers.
const headMax = 16 << 10

// bodyBuffer is the buffer an upload's body is read through.
const bodyBuffer = 1 << 20

// One is the answer of RouteUpload and RouteGet: the app.
type One struct {
	App app.App `json:"app"`
}
