package manifests

import (
	"fmt"
	"strconv"
	"strings"
)

var cronFields = []struct {
	name     string
	min, max int
}{
	{"minute", 0, 59},
	{"hour", 0, 23},
	{"day of month", 1, 31},
	{"month", 1, 12},
	{"day of week", 0, 7},
}

// ParseCron checks that expr is a standard five-field cron expression (minute
// hour day-of-month month day-of-week) made of "*", numbers, ranges "a-b",
// steps "/n" and comma lists, each value inside its field's range. Names
// (JAN, MON) and macros (@hourly) are refused: both Knative PingSource and the
// OpenFaaS cron-connector accept this common subset.
func ParseCron(expr string) error {
	fields := strings.Fields(expr)
	if len(fields) != len(cronFields) {
		return fmt.Errorf("cron %q: want %d fields, got %d", expr, len(cronFields), len(fields))
	}
	for i, f := range fields {
		spec := cronFields[i]
		for _, part := range strings.Split(f, ",") {
			if err := cronPart(part, spec.min, spec.max); err != nil {
				return fmt.Errorf("cron %q: %s: %w", expr, spec.name, err)
			}
		}
	}
	return nil
}

func cronPart(part string, lo, hi int) error {
	rng, step, hasStep := strings.Cut(part, "/")
	if hasStep {
		n, err := strconv.Atoi(step)
		if err != nil || n < 1 || n > hi {
			return fmt.Errorf("step %q is not a number in 1..%d", step, hi)
		}
	}
	if rng == "*" {
		return nil
	}
	a, b, isRange := strings.Cut(rng, "-")
	from, err := cronValue(a, lo, hi)
	if err != nil {
		return err
	}
	if !isRange {
		return nil
	}
	to, err := cronValue(b, lo, hi)
	if err != nil {
		return err
	}
	if from > to {
		return fmt.Errorf("range %q runs backwards", rng)
	}
	return nil
}

func cronValue(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a number in %d..%d", s, lo, hi)
	}
	return n, nil
}
