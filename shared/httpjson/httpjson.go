// Package httpjson reads and writes the JSON bodies of public HTTP functions
// with the platform's rules: JSON only, 1 MiB at most, unknown fields and
// trailing data rejected, every fault an apierr a caller can act on.
package httpjson

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// MaxBody is the largest JSON body Decode reads.
const MaxBody = 1 << 20

// Decode reads r's body as exactly one JSON value into dst (a pointer).
// It returns apierr UnsupportedMediaType (415) unless Content-Type is
// application/json (charset, if given, utf-8), apierr TooLarge (413) for a body
// over MaxBody, and apierr Invalid (400) for an empty body, malformed JSON, an
// unknown field, a value of the wrong type (naming the field) or data after the
// value.
func Decode(r *http.Request, dst any) error {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if r.Body == nil || r.Body == http.NoBody {
		return apierr.New(apierr.Invalid, "request body is empty")
	}
	body := http.MaxBytesReader(nil, r.Body, MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return apierr.New(apierr.Invalid, "request body must hold a single JSON value")
	}
	return nil
}

func checkContentType(ct string) error {
	if ct == "" {
		return apierr.New(apierr.UnsupportedMediaType, "Content-Type must be application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return apierr.New(apierr.UnsupportedMediaType, "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return apierr.New(apierr.UnsupportedMediaType, "JSON must be UTF-8")
	}
	return nil
}

func decodeError(err error) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return apierr.New(apierr.TooLarge, "request body is larger than %d bytes", MaxBody)
	case errors.Is(err, io.EOF):
		return apierr.New(apierr.Invalid, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apierr.New(apierr.Invalid, "request body is not valid JSON: it ends too early")
	case errors.As(err, &syntax):
		return apierr.New(apierr.Invalid, "request body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return apierr.New(apierr.Invalid, "request body must be %s", jsonKind(typ.Type.String()))
		}
		return apierr.New(apierr.Invalid, "field %q must be %s", typ.Field, jsonKind(typ.Type.String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return apierr.New(apierr.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return apierr.Wrap(apierr.Invalid, err, "request body is not valid JSON")
	}
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	default:
		return "an object"
	}
}

// Limit reads the page size in r's ?limit: 0 when absent (the caller's
// default), apierr Invalid unless it is a number from 1 to max.
func Limit(r *http.Request, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, apierr.New(apierr.Invalid, "limit: must be 1 to %d", max)
	}
	return n, nil
}

// Write writes v as JSON with status. A nil v writes no body (204 and the like).
func Write(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (an unencodable type) lands here.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"code":"internal","message":"internal error"}}`+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// NotFound answers every request with the platform's JSON 404.
func NotFound(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apierr.Write(w, r, log, apierr.New(apierr.NotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
}

// NewMux returns a ServeMux that answers what no pattern matches with the
// platform's JSON 404 rather than net/http's text one.
func NewMux(log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/", NotFound(log))
	return mux
}
