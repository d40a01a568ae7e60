// Package apierr is the platform's one error type: a stable code, a message that
// is safe to show to a caller, and the table that maps each code to an HTTP status.
package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Code is a stable, machine-readable error code. Clients branch on it.
type Code string

// The stable error codes of the public API (README), plus those that HTTP
// hygiene needs (method_not_allowed, unprocessable, too_large,
// unsupported_media_type).
const (
	Invalid              Code = "invalid"
	Unauthorized         Code = "unauthorized"
	Forbidden            Code = "forbidden"
	NotFound             Code = "not_found"
	MethodNotAllowed     Code = "method_not_allowed"
	Conflict             Code = "conflict"
	Unprocessable        Code = "unprocessable"
	RateLimited          Code = "rate_limited"
	InsufficientFunds    Code = "insufficient_funds"
	QuotaExceeded        Code = "quota_exceeded"
	TooLarge             Code = "too_large"
	UnsupportedMediaType Code = "unsupported_media_type"
	Unavailable          Code = "unavailable"
	Internal             Code = "internal"
)

var statusOf = map[Code]int{
	Invalid:              http.StatusBadRequest,
	Unauthorized:         http.StatusUnauthorized,
	Forbidden:            http.StatusForbidden,
	NotFound:             http.StatusNotFound,
	MethodNotAllowed:     http.StatusMethodNotAllowed,
	Conflict:             http.StatusConflict,
	Unprocessable:        http.StatusUnprocessableEntity,
	RateLimited:          http.StatusTooManyRequests,
	InsufficientFunds:    http.StatusPaymentRequired,
	QuotaExceeded:        http.StatusForbidden,
	TooLarge:             http.StatusRequestEntityTooLarge,
	UnsupportedMediaType: http.StatusUnsupportedMediaType,
	Unavailable:          http.StatusServiceUnavailable,
	Internal:             http.StatusInternalServerError,
}

// Status returns the HTTP status for code; unknown codes are 500.
func (c Code) Status() int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is an error with a stable code and a message safe to show. Cause is
// logged, never shown.
type Error struct {
	Code       Code
	Message    string
	Cause      error
	RetryAfter time.Duration // sent as Retry-After when set
	// Status, when set, is answered instead of the code's status: for the
	// few answers the API documents with another status (a phone refused
	// for funds is 409 insufficient_funds: the request conflicts with the
	// balance, nothing is to be paid for it).
	Status int
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// New returns an error with code and a caller-safe message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with code and message that keeps cause for the logs.
func Wrap(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// CodeOf returns the code of err: the code of the *Error in its chain, or
// Internal for any other non-nil error.
func CodeOf(err error) Code {
	if e := As(err); e != nil {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }

// Body is the JSON shape of every error response.
type Body struct {
	Error BodyError `json:"error"`
}

// BodyError is the inner object of Body.
type BodyError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Write writes err as the platform's JSON error. An error without a code becomes
// a generic internal error and is logged once here, with its cause.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := As(err)
	if e == nil {
		e = &Error{Code: Internal, Message: "internal error", Cause: err}
		if unreachable(err) {
			e = &Error{Code: Unavailable, Message: "a backing service is unavailable, try again shortly", Cause: err, RetryAfter: time.Second}
		}
	}
	status := e.Code.Status()
	if e.Status != 0 {
		status = e.Status
	}
	if status >= 500 && log != nil {
		log.ErrorContext(r.Context(), "request failed", "code", e.Code, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	msg := e.Message
	if e.Code == Internal {
		msg = "internal error"
	}
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Body{Error: BodyError{Code: e.Code, Message: msg}})
}

// unreachable reports whether err comes from failing to reach a server: a
// refused or dropped connection, a dial timeout, or Postgres refusing
// connections while it shuts down or starts. The request may succeed later, so
// it is answered 503, not 500.
func unreachable(err error) bool {
	var op *net.OpError
	var connect *pgconn.ConnectError
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &op), errors.As(err, &connect), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &pg):
		// Class 08: connection exception; 57P01-57P03: shutting down, crashed,
		// cannot connect now; 53300: too many connections.
		return strings.HasPrefix(pg.Code, "08") || pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03" || pg.Code == "53300"
	}
	return pgconn.SafeToRetry(err)
}
