// Package logging builds the platform's slog logger: JSON to stdout, with the
// request's or event's correlation id added to every record logged with a context.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
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
// "error"; default info) that adds correlation_id from the context and
// writes every key once per line.
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
	return slog.New(handler{next: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv}), keys: builtinKeys})
}

// Default returns New(os.Stdout, $LOG_LEVEL).
func Default() *slog.Logger { return New(os.Stdout, os.Getenv("LOG_LEVEL")) }

// Discard returns a logger that drops everything (for benchmarks).
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// CorrelationKey is the key of the correlation id in every log line.
const CorrelationKey = "correlation_id"

// handler adds the context's correlation id to each record and keeps every
// key once in a line: an attribute whose key the logger (With) or the record
// has already is dropped, so a JSON line never holds a key twice. Keys inside
// groups are checked within their group.
type handler struct {
	next slog.Handler
	keys []string // top-level keys of the logger's attributes (in its current group)
}

// builtinKeys are the keys slog's JSON handler writes itself at the top level.
var builtinKeys = []string{slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	id := Correlation(ctx)
	if id != "" && slices.Contains(h.keys, CorrelationKey) {
		id = ""
	}
	if !h.clash(r, id != "") {
		if id != "" {
			r.AddAttrs(slog.String(CorrelationKey, id))
		}
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	seen := slices.Clone(h.keys)
	r.Attrs(func(a slog.Attr) bool {
		if !slices.Contains(seen, a.Key) {
			seen = append(seen, a.Key)
			out.AddAttrs(a)
		}
		return true
	})
	if id != "" && !slices.Contains(seen, CorrelationKey) {
		out.AddAttrs(slog.String(CorrelationKey, id))
	}
	return h.next.Handle(ctx, out)
}

// clash reports whether r repeats a key of the logger's or one of its own
// (or, with withID, holds the correlation id already).
func (h handler) clash(r slog.Record, withID bool) bool {
	found := false
	i := 0
	r.Attrs(func(a slog.Attr) bool {
		if slices.Contains(h.keys, a.Key) || withID && a.Key == CorrelationKey {
			found = true
			return false
		}
		j := 0
		r.Attrs(func(b slog.Attr) bool {
			if j >= i {
				return false
			}
			j++
			if b.Key == a.Key {
				found = true
			}
			return !found
		})
		i++
		return !found
	})
	return found
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	keys := slices.Clone(h.keys)
	kept := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if !slices.Contains(keys, a.Key) {
			keys = append(keys, a.Key)
			kept = append(kept, a)
		}
	}
	return handler{next: h.next.WithAttrs(kept), keys: keys}
}

func (h handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return handler{next: h.next.WithGroup(name)}
}
