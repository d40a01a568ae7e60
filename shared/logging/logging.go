// Package logging builds the platform's slog logger: JSON to stdout, with the
// request's or event's correlation id added to every record logged with a context.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
)

type correlationKey struct{}

// WithCorrelation returns ctx carrying id as the correlation id.
func WithCorrelation(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, correlationKey{}, id)
}

// Correlation returns the correlation id carried by ctx, or "".
func Correlation(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// New returns a JSON logger writing to w at level ("debug", "info", "warn",
// "error"; default info) that adds correlation_id from the context.
func New(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	return slog.New(correlationHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})})
}

// Default returns New(os.Stdout, $LOG_LEVEL).
func Default() *slog.Logger { return New(os.Stdout, os.Getenv("LOG_LEVEL")) }

// Discard returns a logger that drops everything (for benchmarks).
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

type correlationHandler struct{ slog.Handler }

func (h correlationHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := Correlation(ctx); id != "" {
		r.AddAttrs(slog.String("correlation_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h correlationHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return correlationHandler{h.Handler.WithAttrs(attrs)}
}

func (h correlationHandler) WithGroup(name string) slog.Handler {
	return correlationHandler{h.Handler.WithGroup(name)}
}
