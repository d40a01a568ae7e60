package logging_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/logging/logtest"
)

func TestEveryLineHoldsEachKeyOnce(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "debug").With("function", "billing-orders", "context", "billing")
	ctx := logging.WithCorrelation(context.Background(), "corr-1")

	log.InfoContext(ctx, "plain", "order_id", "o1")
	log.With("function", "again").InfoContext(ctx, "logger repeats a key")
	log.InfoContext(ctx, "record repeats the logger's key", "function", "again", "context", "x")
	log.InfoContext(ctx, "record repeats its own key", "status", 1, "status", 2)
	log.InfoContext(ctx, "record carries the correlation id", logging.CorrelationKey, "explicit")
	log.With(logging.CorrelationKey, "from-with").InfoContext(ctx, "logger carries the correlation id")
	log.InfoContext(ctx, "record names a built-in key", "msg", "shadow", "level", "x")
	log.WithGroup("g").With("a", 1).InfoContext(ctx, "group", "a", 2, "b", 3)
	log.InfoContext(context.Background(), "no correlation")

	out := buf.String()
	lines := logtest.Lines(t, &buf)
	if len(lines) != 9 {
		t.Fatalf("%d lines, want 9:\n%s", len(lines), buf.String())
	}
	want := map[string]string{
		"plain":                             "corr-1",
		"record carries the correlation id": "explicit",
		"logger carries the correlation id": "from-with",
	}
	for _, l := range lines {
		msg := l["msg"].(string)
		if id, ok := want[msg]; ok && l[logging.CorrelationKey] != id {
			t.Errorf("%q: correlation_id %v, want %s", msg, l[logging.CorrelationKey], id)
		}
		if l["function"] != "billing-orders" {
			t.Errorf("%q: function %v, want the logger's billing-orders", msg, l["function"])
		}
	}
	if !strings.Contains(out, `"g":{"a":1,"b":3,`) {
		t.Errorf("a group keeps its own first key: %s", out)
	}
}

func TestHandlerWithoutDuplicatesAddsNothingButTheCorrelationID(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "info")
	log.LogAttrs(logging.WithCorrelation(context.Background(), "c"), slog.LevelInfo, "request", slog.String("method", "GET"), slog.Int("status", 200))
	l := logtest.Lines(t, &buf)[0]
	if l["method"] != "GET" || l["status"] != float64(200) || l[logging.CorrelationKey] != "c" || len(l) != 6 {
		t.Fatalf("line %v", l)
	}
}
