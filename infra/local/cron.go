package local

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// schedule is a parsed 5-field cron expression (minute hour day-of-month month
// day-of-week), as PingSource and OpenFaaS' cron-connector take it.
type schedule struct {
	fields [5]map[int]bool
}

var cronRanges = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 6}}

// parseSchedule accepts *, n, a-b, */s, a-b/s and comma lists in each field.
func parseSchedule(expr string) (schedule, error) {
	var s schedule
	parts := strings.Fields(expr)
	if len(parts) != 5 {
		return s, fmt.Errorf("cron %q: want 5 fields, got %d", expr, len(parts))
	}
	for i, p := range parts {
		set := map[int]bool{}
		lo, hi := cronRanges[i][0], cronRanges[i][1]
		for item := range strings.SplitSeq(p, ",") {
			rng, stepStr, hasStep := strings.Cut(item, "/")
			step := 1
			if hasStep {
				n, err := strconv.Atoi(stepStr)
				if err != nil || n <= 0 {
					return s, fmt.Errorf("cron %q: bad step %q", expr, stepStr)
				}
				step = n
			}
			from, to := lo, hi
			if rng != "*" {
				a, b, isRange := strings.Cut(rng, "-")
				x, err := strconv.Atoi(a)
				if err != nil {
					return s, fmt.Errorf("cron %q: bad value %q", expr, a)
				}
				from, to = x, x
				if isRange {
					if to, err = strconv.Atoi(b); err != nil {
						return s, fmt.Errorf("cron %q: bad value %q", expr, b)
					}
				} else if hasStep {
					to = hi
				}
			}
			if from < lo || to > hi || from > to {
				return s, fmt.Errorf("cron %q: %q out of range %d-%d", expr, item, lo, hi)
			}
			for v := from; v <= to; v += step {
				set[v] = true
			}
		}
		s.fields[i] = set
	}
	return s, nil
}

// matches reports whether t's minute is one the schedule fires on.
func (s schedule) matches(t time.Time) bool {
	return s.fields[0][t.Minute()] && s.fields[1][t.Hour()] && s.fields[2][t.Day()] &&
		s.fields[3][int(t.Month())] && s.fields[4][int(t.Weekday())]
}

// next returns the first minute after t that the schedule fires on.
func (s schedule) next(t time.Time) time.Time {
	n := t.Truncate(time.Minute).Add(time.Minute)
	for range 366 * 24 * 60 {
		if s.matches(n) {
			return n
		}
		n = n.Add(time.Minute)
	}
	return time.Time{}
}
