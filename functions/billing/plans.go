package billing

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Quota is what a plan grants on top of a user's base quota.
type Quota struct {
	MaxDevices        int `json:"max_devices"`
	MaxRunningDevices int `json:"max_running_devices"`
	MaxCPUCores       int `json:"max_cpu_cores"`
	MaxMemoryMB       int `json:"max_memory_mb"`
	MaxStorageGB      int `json:"max_storage_gb"`
	DeviceMaxCPUCores int `json:"device_max_cpu_cores"`
	DeviceMaxMemoryMB int `json:"device_max_memory_mb"`
	// IdleMinutes is how long a running phone may go without an ADB session
	// or API use before it is stopped (reason idle); the user gets the
	// larger of this and the base quota's. 0 adds nothing.
	IdleMinutes int `json:"idle_minutes"`
}

// check records the amounts of q outside the bounds the user context grants
// (userevents.Limits.Check), so a plan it would refuse cannot be sold.
func (q Quota) check(p *validate.Problems) {
	userevents.Limits(q).Check("quota.", p)
}

// Plan is a plan a user can buy: its price in minor units of Currency, the
// days one purchase adds to a subscription, and the quota it grants.
type Plan struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Price      int64     `json:"price"`
	Currency   string    `json:"currency"`
	PeriodDays int       `json:"period_days"`
	Quota      Quota     `json:"quota"`
	Active     bool      `json:"active"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// PlanRequest is the body of POST /admin/plans (ID required) and PUT
// /admin/plans/{id} (ID from the path). Active defaults to true.
type PlanRequest struct {
	ID         string `json:"id,omitempty"`
	Name       string `json:"name"`
	Price      int64  `json:"price"`
	Currency   string `json:"currency"`
	PeriodDays int    `json:"period_days"`
	Quota      Quota  `json:"quota"`
	Active     *bool  `json:"active,omitempty"`
}

var planIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate checks every field and returns an apierr Invalid naming the faulty ones.
func (r PlanRequest) Validate(currency string) error {
	var p validate.Problems
	p.Check(planIDPattern.MatchString(r.ID), "id", "must be 1 to 32 of a-z 0-9 _ - starting with a letter or digit")
	p.Check(r.Name != "" && len(r.Name) <= 64 && validate.NoControlChars(r.Name), "name", "must be 1 to 64 characters without control characters")
	p.Check(r.Price >= 0 && r.Price <= 1e12, "price", "must be 0 to 1000000000000 minor units")
	p.Check(r.Currency == currency, "currency", "must be "+currency)
	p.Check(r.PeriodDays >= 1 && r.PeriodDays <= 3660, "period_days", "must be 1 to 3660")
	r.Quota.check(&p)
	return p.Err()
}

const planColumns = `id, name, price, currency, period_days, max_devices, max_running_devices, max_cpu_cores,
	max_memory_mb, max_storage_gb, device_max_cpu_cores, device_max_memory_mb, idle_minutes, active, created_at, updated_at`

func scanPlan(row pgx.Row) (Plan, error) {
	var p Plan
	q := &p.Quota
	err := row.Scan(&p.ID, &p.Name, &p.Price, &p.Currency, &p.PeriodDays, &q.MaxDevices, &q.MaxRunningDevices,
		&q.MaxCPUCores, &q.MaxMemoryMB, &q.MaxStorageGB, &q.DeviceMaxCPUCores, &q.DeviceMaxMemoryMB,
		&q.IdleMinutes, &p.Active, &p.CreatedAt, &p.UpdatedAt)
	return p, err
}

// DefaultPlans are the plans seeded on first start (prices in minor units of
// the configured currency).
var DefaultPlans = []PlanRequest{
	{ID: "basic", Name: "Basic", Price: 990, PeriodDays: 30, Quota: Quota{
		MaxDevices: 2, MaxRunningDevices: 1, MaxCPUCores: 4, MaxMemoryMB: 4096, MaxStorageGB: 32,
		DeviceMaxCPUCores: 2, DeviceMaxMemoryMB: 2048, IdleMinutes: 60}},
	{ID: "pro", Name: "Pro", Price: 2990, PeriodDays: 30, Quota: Quota{
		MaxDevices: 5, MaxRunningDevices: 3, MaxCPUCores: 12, MaxMemoryMB: 16384, MaxStorageGB: 128,
		DeviceMaxCPUCores: 4, DeviceMaxMemoryMB: 4096, IdleMinutes: 120}},
	{ID: "team", Name: "Team", Price: 9990, PeriodDays: 30, Quota: Quota{
		MaxDevices: 20, MaxRunningDevices: 10, MaxCPUCores: 48, MaxMemoryMB: 65536, MaxStorageGB: 512,
		DeviceMaxCPUCores: 8, DeviceMaxMemoryMB: 8192, IdleMinutes: 240}},
}

const insertPlan = `
INSERT INTO plans (id, name, price, currency, period_days, max_devices, max_running_devices, max_cpu_cores,
                   max_memory_mb, max_storage_gb, device_max_cpu_cores, device_max_memory_mb, active, idle_minutes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`

func planArgs(r PlanRequest) []any {
	active := r.Active == nil || *r.Active
	q := r.Quota
	return []any{r.ID, r.Name, r.Price, r.Currency, r.PeriodDays, q.MaxDevices, q.MaxRunningDevices, q.MaxCPUCores,
		q.MaxMemoryMB, q.MaxStorageGB, q.DeviceMaxCPUCores, q.DeviceMaxMemoryMB, active, q.IdleMinutes}
}

// seedPlans inserts DefaultPlans that do not exist yet; existing plans (an
// administrator may have changed them) are left alone.
func (s *Service) seedPlans(ctx context.Context) error {
	for _, p := range DefaultPlans {
		p.Currency = s.cfg.Currency
		if _, err := s.pool.Exec(ctx, insertPlan+` ON CONFLICT (id) DO NOTHING`, planArgs(p)...); err != nil {
			return fmt.Errorf("seed plan %s: %w", p.ID, err)
		}
	}
	return nil
}

// Plans returns the plans, cheapest first: only active ones unless all.
func (s *Service) Plans(ctx context.Context, all bool) ([]Plan, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+planColumns+` FROM plans WHERE active OR $1 ORDER BY price, id`, all)
	if err != nil {
		return nil, fmt.Errorf("list plans: %w", err)
	}
	plans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Plan, error) { return scanPlan(r) })
	if err != nil {
		return nil, fmt.Errorf("list plans: %w", err)
	}
	return plans, nil
}

// Plan returns the plan id; an unknown plan, or an inactive one unless all,
// is apierr NotFound.
func (s *Service) Plan(ctx context.Context, id string, all bool) (Plan, error) {
	p, err := scanPlan(s.pool.QueryRow(ctx, `SELECT `+planColumns+` FROM plans WHERE id = $1`, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && !p.Active && !all):
		return Plan{}, apierr.New(apierr.NotFound, "no plan %q", id)
	case err != nil:
		return Plan{}, fmt.Errorf("read plan %s: %w", id, err)
	}
	return p, nil
}

// CreatePlan adds a plan; an existing id is apierr Conflict.
func (s *Service) CreatePlan(ctx context.Context, req PlanRequest) (Plan, error) {
	if err := req.Validate(s.cfg.Currency); err != nil {
		return Plan{}, err
	}
	_, err := s.pool.Exec(ctx, insertPlan, planArgs(req)...)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return Plan{}, apierr.New(apierr.Conflict, "plan %q exists", req.ID)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("create plan %s: %w", req.ID, err)
	}
	s.log.InfoContext(ctx, "plan created", "plan_id", req.ID, "price", req.Price)
	return s.Plan(ctx, req.ID, true)
}

// UpdatePlan replaces every field of plan id (orders already placed keep
// the terms they were placed with); an unknown id is apierr NotFound.
func (s *Service) UpdatePlan(ctx context.Context, id string, req PlanRequest) (Plan, error) {
	if req.ID != "" && req.ID != id {
		return Plan{}, apierr.New(apierr.Invalid, "id: must be absent or %q", id)
	}
	req.ID = id
	if err := req.Validate(s.cfg.Currency); err != nil {
		return Plan{}, err
	}
	args := planArgs(req)
	tag, err := s.pool.Exec(ctx, `
UPDATE plans SET name = $2, price = $3, currency = $4, period_days = $5, max_devices = $6, max_running_devices = $7,
       max_cpu_cores = $8, max_memory_mb = $9, max_storage_gb = $10, device_max_cpu_cores = $11,
       device_max_memory_mb = $12, active = $13, idle_minutes = $14, updated_at = now()
WHERE id = $1`, args...)
	if err != nil {
		return Plan{}, fmt.Errorf("update plan %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return Plan{}, apierr.New(apierr.NotFound, "no plan %q", id)
	}
	s.log.InfoContext(ctx, "plan updated", "plan_id", id, "price", req.Price, "active", args[12])
	return s.Plan(ctx, id, true)
}
