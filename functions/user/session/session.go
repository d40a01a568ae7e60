// Package session keeps the web console's refresh token in a cookie:
// HttpOnly and SameSite=Strict, so page scripts never see it, with the
// session's CSRF token beside it that the page sends back in a header on
// every cookie-authenticated call (the edge checks that the token is the
// session's own).
package session

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/edge"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// ModeHeader asks login and refresh for a cookie session: "X-Session: cookie".
const ModeHeader = "X-Session"

// cookiePath scopes the refresh cookie to the auth routes.
const cookiePath = "/api/v1/auth"

// Wanted reports whether the caller asked for a cookie session, or already has one.
func Wanted(r *http.Request) bool {
	if r.Header.Get(ModeHeader) == "cookie" {
		return true
	}
	_, err := r.Cookie(edge.SessionCookie)
	return err == nil
}

// RefreshToken returns the refresh token of the caller's cookie session, or "".
func RefreshToken(r *http.Request) string {
	c, err := r.Cookie(edge.SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// Set moves t's refresh token into the session cookie (it leaves the JSON
// body) and sets the session's CSRF token (edge.CSRFToken, bound to that
// refresh token) in a cookie for the page to echo.
func Set(w http.ResponseWriter, t *user.Tokens, ttl time.Duration) error {
	if t.RefreshToken == "" {
		return errors.New("session: no refresh token to keep")
	}
	http.SetCookie(w, &http.Cookie{Name: edge.SessionCookie, Value: t.RefreshToken, Path: cookiePath,
		MaxAge: int(ttl.Seconds()), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: edge.CSRFCookie, Value: edge.CSRFToken(t.RefreshToken), Path: "/",
		MaxAge: int(ttl.Seconds()), Secure: true, SameSite: http.SameSiteStrictMode})
	t.RefreshToken = ""
	return nil
}

// Clear ends the cookie session.
func Clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: edge.SessionCookie, Path: cookiePath, MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: edge.CSRFCookie, Path: "/", MaxAge: -1, Secure: true, SameSite: http.SameSiteStrictMode})
}

// WriteTokens answers a login or a refresh: never cached; the tokens, with the
// refresh token moved into the session cookie when the caller wants a cookie
// session; or err as the platform's JSON error.
func WriteTokens(w http.ResponseWriter, r *http.Request, log *slog.Logger, t user.Tokens, err error, ttl time.Duration) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if err == nil && Wanted(r) {
		err = Set(w, &t, ttl)
	}
	if err != nil {
		apierr.Write(w, r, log, err)
		return
	}
	httpjson.Write(w, http.StatusOK, t)
}
