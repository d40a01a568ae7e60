package billing

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Kinds of device fact, from the event types.
var factKinds = map[string]string{
	deviceevents.EventRunning: "running",
	deviceevents.EventStopped: "stopped",
	deviceevents.EventError:   "error",
	deviceevents.EventDeleted: "deleted",
}

var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// RecordDeviceFact stores the device fact e (type typ, data f) for metering,
// once: a running fact opens a usage interval at f.At, a stopped, error or
// deleted fact closes it at f.At, whatever order they arrive in (intervals are
// derived from the facts sorted by time when usage is charged). A closing
// fact charges the user's usage at once, as a charging run would. A fact that
// cannot be read is function.Permanent.
func (s *Service) RecordDeviceFact(ctx context.Context, e event.Event, typ string, f deviceevents.Fact) (Outcome, error) {
	kind, ok := factKinds[typ]
	var p validate.Problems
	p.Check(ok, "type", "is not a device fact billing meters")
	p.Check(deviceIDPattern.MatchString(f.DeviceID), "device_id", "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
	p.Check(validate.UUID(f.UserID), "user_id", "must be a UUID")
	p.Check(!f.At.IsZero(), "at", "is required")
	if kind == "running" {
		p.Check(f.CPUCores > 0 && f.CPUCores <= 1024, "cpu_cores", "must be 1 to 1024")
		p.Check(f.MemoryMB > 0 && f.MemoryMB <= 1<<22, "memory_mb", "must be 1 to 4194304")
	}
	if err := p.Err(); err != nil {
		return "", function.Permanent(fmt.Errorf("device fact %s: %w", e.ID(), err))
	}
	out := OutcomeApplied
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil || !first {
			out = OutcomeDuplicate
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO device_facts (device_id, kind, at, user_id, cpu_cores, memory_mb)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, f.DeviceID, kind, f.At.UTC(), f.UserID, f.CPUCores, f.MemoryMB)
		if err != nil {
			return fmt.Errorf("record %s of device %s: %w", kind, f.DeviceID, err)
		}
		if tag.RowsAffected() == 0 {
			out = OutcomeDuplicate
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO usage_devices (device_id, user_id) VALUES ($1, $2)
ON CONFLICT (device_id) DO UPDATE SET pending = true, updated_at = now()`, f.DeviceID, f.UserID)
		return err
	})
	if err != nil {
		return "", err
	}
	if out == OutcomeApplied && kind != "running" {
		// A phone that stopped is charged now, not at the next charging
		// run: otherwise stopping and starting again before each run would
		// never be paid for. A failure here is left to that run.
		var rep ChargeReport
		if err := s.chargeUser(ctx, f.UserID, &rep); err != nil {
			s.log.WarnContext(ctx, "usage not charged on stop; the charging job will", "user_id", f.UserID, "device_id", f.DeviceID, "err", err)
		}
	}
	return out, nil
}

// RateMilli is the hourly price, in thousandths of a minor unit, of a device
// with cores and memoryMB: base + per_core × cores + per_gb × memory_gb.
func (s *Service) RateMilli(cores, memoryMB int) int64 {
	return s.cfg.UsageBasePerHour*1000 + s.cfg.UsageCorePerHour*int64(cores)*1000 + s.cfg.UsageGBPerHour*int64(memoryMB)*1000/1024
}

// UsageCost is the price of minutes started minutes at rateMilli, rounded
// up to a whole minor unit.
func UsageCost(minutes, rateMilli int64) int64 {
	return (minutes*rateMilli + 60_000 - 1) / 60_000
}

// startedMinutes counts the minutes started in [from, to).
func startedMinutes(from, to time.Time) int64 {
	if !to.After(from) {
		return 0
	}
	d := to.Sub(from)
	return int64((d + time.Minute - 1) / time.Minute)
}

type fact struct {
	kind      string
	at        time.Time
	cpu, mem  int
	deviceID  string
	rateMilli int64
}

type interval struct {
	start, end time.Time // end zero while running
	rateMilli  int64
}

// intervals derives a device's running intervals from its facts sorted by
// time (running before a close at the same instant): running opens one when
// none is open, stopped, error or deleted closes the open one; nothing counts
// after deleted.
func intervals(facts []fact) []interval {
	var out []interval
	open := -1
	for _, f := range facts {
		switch f.kind {
		case "running":
			if open < 0 {
				out = append(out, interval{start: f.at, rateMilli: f.rateMilli})
				open = len(out) - 1
			}
		default:
			if open >= 0 {
				out[open].end = f.at
				open = -1
			}
			if f.kind == "deleted" {
				return out
			}
		}
	}
	return out
}

// ChargeReport sums up one charging run.
type ChargeReport struct {
	Users     int   `json:"users"`
	Charged   int64 `json:"charged"`   // taken from balances
	Unpaid    int64 `json:"unpaid"`    // usage the balances could not cover
	Exhausted int   `json:"exhausted"` // balance.exhausted events sent
	Low       int   `json:"low"`       // balance.low events sent
}

// ChargeUsage charges every user's usage accrued up to now, per started
// minute of each running interval at the device's rate, as one usage entry per
// user. A balance is never taken below zero: what it cannot cover is recorded
// as the balance's unpaid usage (a debt, charged first on later runs) and
// balance.exhausted is sent: once until the balance is credited again, and
// again on every run while a device keeps running unpaid. A balance below one day of current usage gets
// balance.low, at most once per LOW_BALANCE_EVERY. Usage already charged is
// never charged again (each interval's charged minutes are kept), so runs may
// repeat or overlap.
func (s *Service) ChargeUsage(ctx context.Context) (ChargeReport, error) {
	var rep ChargeReport
	rows, err := s.pool.Query(ctx, `
SELECT user_id::text FROM usage_devices WHERE pending
UNION
SELECT user_id::text FROM balances WHERE unpaid_usage > 0`)
	if err != nil {
		return rep, fmt.Errorf("list users with usage: %w", err)
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return rep, fmt.Errorf("list users with usage: %w", err)
	}
	for _, u := range users {
		if err := s.chargeUser(ctx, u, &rep); err != nil {
			return rep, err
		}
	}
	if len(users) > 0 {
		s.committed(StepUsageCharged)
	}
	return rep, nil
}

func (s *Service) chargeUser(ctx context.Context, userID string, rep *ChargeReport) error {
	now := s.now().UTC()
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO balances (user_id, balance, currency) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING`,
			userID, s.cfg.Currency); err != nil {
			return err
		}
		var (
			balance, debt int64
			exhausted     bool
			lowAt         *time.Time
		)
		if err := tx.QueryRow(ctx, `SELECT balance, unpaid_usage, exhausted_notified, low_notified_at FROM balances WHERE user_id = $1 FOR UPDATE`,
			userID).Scan(&balance, &debt, &exhausted, &lowAt); err != nil {
			return fmt.Errorf("lock balance of %s: %w", userID, err)
		}
		rows, err := tx.Query(ctx, `
SELECT f.device_id, f.kind, f.at, f.cpu_cores, f.memory_mb
FROM usage_devices d JOIN device_facts f ON f.device_id = d.device_id
WHERE d.user_id = $1 AND d.pending
ORDER BY f.device_id, f.at, f.kind <> 'running'
FOR UPDATE OF d`, userID)
		if err != nil {
			return fmt.Errorf("read usage of %s: %w", userID, err)
		}
		facts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fact, error) {
			var f fact
			err := r.Scan(&f.deviceID, &f.kind, &f.at, &f.cpu, &f.mem)
			f.rateMilli = s.RateMilli(f.cpu, f.mem)
			return f, err
		})
		if err != nil {
			return fmt.Errorf("read usage of %s: %w", userID, err)
		}
		byDevice := map[string][]fact{}
		var order []string
		for _, f := range facts {
			if _, ok := byDevice[f.deviceID]; !ok {
				order = append(order, f.deviceID)
			}
			byDevice[f.deviceID] = append(byDevice[f.deviceID], f)
		}
		// What is owed: the debt left by earlier runs, plus what this run
		// finds; a late fact that shortens an interval lowers it.
		total, dailyMilli := debt, int64(0)
		running := false // a device still runs (and so keeps costing)
		for _, dev := range order {
			var charged int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM usage_charges WHERE device_id = $1`, dev).
				Scan(&charged); err != nil {
				return fmt.Errorf("read charges of device %s: %w", dev, err)
			}
			var cost int64
			open := false
			var starts []time.Time
			for _, iv := range intervals(byDevice[dev]) {
				starts = append(starts, iv.start)
				end := iv.end
				if end.IsZero() {
					open = true
					dailyMilli += iv.rateMilli * 24
					end = now
				}
				minutes := startedMinutes(iv.start, end)
				c := UsageCost(minutes, iv.rateMilli)
				cost += c
				var ended *time.Time
				if !iv.end.IsZero() {
					ended = &iv.end
				}
				if _, err := tx.Exec(ctx, `
INSERT INTO usage_charges (device_id, started_at, user_id, ended_at, minutes, amount) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (device_id, started_at) DO UPDATE
SET ended_at = excluded.ended_at, minutes = excluded.minutes, amount = excluded.amount, updated_at = now()`,
					dev, iv.start, userID, ended, minutes, c); err != nil {
					return fmt.Errorf("record charge of device %s: %w", dev, err)
				}
			}
			// A late fact can merge intervals: what their rows charged is
			// in charged, so they go and the device's rows sum to cost.
			if _, err := tx.Exec(ctx, `DELETE FROM usage_charges WHERE device_id = $1 AND NOT (started_at = ANY($2))`,
				dev, starts); err != nil {
				return fmt.Errorf("drop merged charges of device %s: %w", dev, err)
			}
			total += cost - charged
			running = running || open
			if !open {
				// Only if no fact came in since this run read them: the read
				// (one statement, one snapshot) can miss a fact committed while
				// it waited for the row lock, and that fact must still count.
				if _, err := tx.Exec(ctx, `UPDATE usage_devices SET pending = false, updated_at = now()
WHERE device_id = $1 AND (SELECT count(*) FROM device_facts WHERE device_id = $1) = $2`, dev, len(byDevice[dev])); err != nil {
					return err
				}
			}
		}
		after := balance
		unpaid := int64(0)
		switch {
		case total > 0:
			pay := min(balance, total)
			if pay > 0 {
				e, err := s.post(ctx, tx, posting{userID: userID, amount: -pay, kind: KindUsage,
					reference: "usage:" + now.Format(time.RFC3339), reason: "device usage"})
				if err != nil {
					return err
				}
				after = e.BalanceAfter
				rep.Charged += pay
			}
			unpaid = total - pay
		case total < 0:
			// Only what was paid comes back; a debt was already counted in.
			e, err := s.post(ctx, tx, posting{userID: userID, amount: -total, kind: KindUsage,
				reference: "usage:" + now.Format(time.RFC3339), reason: "usage corrected by a late device fact"})
			if err != nil {
				return err
			}
			after = e.BalanceAfter
		}
		if unpaid != debt {
			if _, err := tx.Exec(ctx, `UPDATE balances SET unpaid_usage = $2::bigint, exhausted_notified = exhausted_notified OR $2::bigint > 0
WHERE user_id = $1`, userID, unpaid); err != nil {
				return err
			}
		}
		if unpaid > 0 {
			rep.Unpaid += unpaid - min(unpaid, debt)
			if !exhausted || running {
				ev, err := newEvent(ctx, billingevents.EventBalanceExhausted, SourceJobs, userID, "", billingevents.BalanceExhausted{
					SchemaVersion: 1, UserID: userID, Balance: after, Currency: s.cfg.Currency, Unpaid: unpaid, At: now})
				if err != nil {
					return err
				}
				if err := outbox.Add(ctx, tx, ev); err != nil {
					return err
				}
				rep.Exhausted++
				s.log.InfoContext(ctx, "balance exhausted", "user_id", userID, "unpaid", unpaid, "still_running", running)
			}
		}
		rep.Users++
		daily := dailyMilli / 1000
		if daily > 0 && after < daily && (lowAt == nil || now.Sub(*lowAt) >= s.cfg.LowBalanceEvery) {
			ev, err := newEvent(ctx, billingevents.EventBalanceLow, SourceJobs, userID, "", billingevents.BalanceLow{
				SchemaVersion: 1, UserID: userID, Balance: after, Currency: s.cfg.Currency, DailyUsage: daily})
			if err != nil {
				return err
			}
			if err := outbox.Add(ctx, tx, ev); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE balances SET low_notified_at = $2 WHERE user_id = $1`, userID, now); err != nil {
				return err
			}
			rep.Low++
		}
		return nil
	})
}

// FundsCheck is what CoverHour found: the balance that can pay (after unpaid
// usage) and the hourly price of the phone.
type FundsCheck struct {
	Available int64  `json:"available"`
	Hourly    int64  `json:"hourly"`
	Currency  string `json:"currency"`
}

// CoverHour checks that userID's balance, less its unpaid usage, pays for at
// least one hour of a phone with cores and memoryMB at the usage rates: a
// phone is started only then, so that nobody runs one for free until the
// next charging run. It fails with InsufficientFunds (HTTP 409) otherwise.
func (s *Service) CoverHour(ctx context.Context, userID string, cores, memoryMB int) (FundsCheck, error) {
	var p validate.Problems
	p.Check(validate.UUID(userID), "user_id", "must be a user id (UUID)")
	p.Check(cores > 0 && cores <= 1024, "cpu_cores", "must be 1 to 1024")
	p.Check(memoryMB > 0 && memoryMB <= 1<<22, "memory_mb", "must be 1 to 4194304")
	if err := p.Err(); err != nil {
		return FundsCheck{}, err
	}
	fc := FundsCheck{Hourly: UsageCost(60, s.RateMilli(cores, memoryMB)), Currency: s.cfg.Currency}
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT balance - unpaid_usage FROM balances WHERE user_id = $1), 0)`, userID).
		Scan(&fc.Available)
	if err != nil {
		return FundsCheck{}, fmt.Errorf("read balance of %s: %w", userID, err)
	}
	if fc.Available < fc.Hourly {
		e := apierr.New(apierr.InsufficientFunds, "the balance (%d %s available) does not cover one hour of this phone (%d %s)",
			fc.Available, fc.Currency, fc.Hourly, fc.Currency)
		e.Status = http.StatusConflict
		return fc, e
	}
	return fc, nil
}
