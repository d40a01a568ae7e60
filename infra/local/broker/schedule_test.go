package broker

import (
	"testing"
	"time"
)

func TestScheduleNextFiresOnMatchingMinutes(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 27, 10, 3, 30, 0, time.UTC)
	cases := []struct {
		expr string
		want time.Time
	}{
		{"* * * * *", time.Date(2026, 11, 27, 10, 4, 0, 0, time.UTC)},
		{"*/5 * * * *", time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC)},
		{"0 * * * *", time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)},
		{"30 2 * * *", time.Date(2026, 11, 28, 2, 30, 0, 0, time.UTC)},
		{"0,10-12 10 * * *", time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		s, err := parseSchedule(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := s.next(base); !got.Equal(c.want) {
			t.Errorf("%s: next = %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestParseScheduleRejectsBadExpressions(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{"* * * *", "61 * * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"} {
		if _, err := parseSchedule(expr); err == nil {
			t.Errorf("%q: want an error", expr)
		}
	}
}
