package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
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

// RunSchedules plays the part of Knative's PingSources until ctx is done: at
// each minute a scheduled function's schedule matches, it sends the
// function's first consumed event type to b as eventauth.PingSource. Bad
// schedules are logged and skipped.
func RunSchedules(ctx context.Context, specs []function.Spec, b *Broker, log *slog.Logger) {
	type job struct {
		spec function.Spec
		s    schedule
	}
	var jobs []job
	for _, sp := range specs {
		if sp.Schedule == "" || len(sp.Consumes) == 0 {
			continue
		}
		s, err := parseSchedule(sp.Schedule)
		if err != nil {
			log.Error("bad schedule", "function", sp.Name, "err", err)
			continue
		}
		jobs = append(jobs, job{sp, s})
	}
	if len(jobs) == 0 {
		return
	}
	for {
		now := time.Now()
		next := now.Truncate(time.Minute).Add(time.Minute)
		select {
		case <-ctx.Done():
			return
		case <-time.After(next.Sub(now)):
		}
		for _, j := range jobs {
			if !j.s.matches(next) {
				continue
			}
			e, err := events.New(ctx, j.spec.Consumes[0], "/cloudphone/schedules/"+j.spec.Name, "", events.Tick{ScheduledAt: next.UTC()})
			if err == nil {
				err = b.Send(eventauth.WithSender(ctx, eventauth.PingSource), e)
			}
			if err != nil {
				log.Error("scheduled event not sent", "function", j.spec.Name, "err", err)
			}
		}
	}
}
