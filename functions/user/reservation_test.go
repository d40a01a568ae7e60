package user_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/apierr"
)

// sevenDevices grants, on top of the free tier, enough for seven devices of
// one core, 1024 MB and 2 GB each, and three running.
var sevenDevices = userevents.Limits{MaxDevices: 6, MaxRunningDevices: 2, MaxCPUCores: 100, MaxMemoryMB: 100_000, MaxStorageGB: 1000}

func small(device string) user.ReserveRequest {
	return user.ReserveRequest{DeviceID: device, CPUCores: 1, MemoryMB: 1024, StorageGB: 2}
}

func quotaOf(t *testing.T, env usertest.Env, userID string) user.Quota {
	t.Helper()
	q, err := env.Service.Quota(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestConcurrentReservesNeverOverrunTheDeviceLimit(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "rita")
	env.Grant(t, "order-1", u.ID, sevenDevices)
	if q := quotaOf(t, env, u.ID); q.Limits.MaxDevices != 7 {
		t.Fatalf("max_devices = %d, want 7", q.Limits.MaxDevices)
	}
	const callers = 200
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, other int
		refused   int
	)
	for i := range callers {
		wg.Go(func() {
			_, err := env.Service.Reserve(ctx, u.ID, small(fmt.Sprintf("dev-%03d", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case apierr.Is(err, apierr.QuotaExceeded):
				refused++
			default:
				other++
				t.Errorf("reserve: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 7 || refused != callers-7 || other != 0 {
		t.Fatalf("%d admitted, %d refused, %d failed; want 7, %d, 0", ok, refused, other, callers-7)
	}
	want := user.Usage{Devices: 7, CPUCores: 7, MemoryMB: 7 * 1024, StorageGB: 14}
	if q := quotaOf(t, env, u.ID); q.Usage != want {
		t.Fatalf("usage = %+v, want %+v", q.Usage, want)
	}
	if n := count(t, env, `SELECT count(*) FROM quota_reservations WHERE user_id = $1`, u.ID); n != 7 {
		t.Fatalf("%d reservations, want 7", n)
	}
	if n := count(t, env, `SELECT count(*) FROM outbox WHERE type = $1`, userevents.EventQuotaExceeded); n != callers-7 {
		t.Fatalf("%d quota.exceeded events, want %d", n, callers-7)
	}
}

func TestConcurrentReservesOfOneDeviceCountOnce(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "sami")
	env.Grant(t, "order-1", u.ID, sevenDevices)
	var wg sync.WaitGroup
	results := make([]user.Reservation, 50)
	for i := range results {
		wg.Go(func() {
			r, err := env.Service.Reserve(ctx, u.ID, small("dev-1"))
			if err != nil {
				t.Errorf("reserve %d: %v", i, err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	for _, r := range results[1:] {
		if r != results[0] {
			t.Fatalf("repeated reserves answered differently: %+v vs %+v", r, results[0])
		}
	}
	want := user.Usage{Devices: 1, CPUCores: 1, MemoryMB: 1024, StorageGB: 2}
	if q := quotaOf(t, env, u.ID); q.Usage != want {
		t.Fatalf("usage = %+v, want %+v", q.Usage, want)
	}
}

func TestReserveIsIdempotentByDeviceAndConflictsOnOtherAmounts(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "tina")
	other := env.Register(t, "ugo")
	first, err := env.Service.Reserve(ctx, u.ID, small("dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := env.Service.Reserve(ctx, u.ID, small("dev-1"))
	if err != nil || again != first {
		t.Fatalf("repeat = %+v, %v; want %+v", again, err, first)
	}
	if first.DeviceID != "dev-1" || first.UserID != u.ID || first.CPUCores != 1 || first.Running || first.CreatedAt.IsZero() {
		t.Fatalf("reservation = %+v", first)
	}
	bigger := small("dev-1")
	bigger.MemoryMB = 2048
	if _, err := env.Service.Reserve(ctx, u.ID, bigger); !apierr.Is(err, apierr.Conflict) {
		t.Fatalf("same device, other amounts: %v, want conflict", err)
	}
	if _, err := env.Service.Reserve(ctx, other.ID, small("dev-1")); !apierr.Is(err, apierr.Conflict) {
		t.Fatalf("same device, other user: %v, want conflict", err)
	}
	if q := quotaOf(t, env, u.ID); q.Usage != (user.Usage{Devices: 1, CPUCores: 1, MemoryMB: 1024, StorageGB: 2}) {
		t.Fatalf("usage = %+v", q.Usage)
	}
	if q := quotaOf(t, env, other.ID); q.Usage != (user.Usage{}) {
		t.Fatalf("other user's usage = %+v", q.Usage)
	}
}

func TestReserveRefusalsNameTheLimit(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "vera") // free tier: 1 device, 2 cores, 2048 MB, 16 GB
	cases := []struct {
		name  string
		req   user.ReserveRequest
		limit string
	}{
		{"per-device cpu cap", user.ReserveRequest{DeviceID: "d1", CPUCores: 3, MemoryMB: 1024}, "device_max_cpu_cores"},
		{"per-device memory cap", user.ReserveRequest{DeviceID: "d1", CPUCores: 1, MemoryMB: 4096}, "device_max_memory_mb"},
		{"storage total", user.ReserveRequest{DeviceID: "d1", CPUCores: 1, MemoryMB: 1024, StorageGB: 17}, "max_storage_gb"},
	}
	for _, tc := range cases {
		_, err := env.Service.Reserve(ctx, u.ID, tc.req)
		if !apierr.Is(err, apierr.QuotaExceeded) || !strings.Contains(err.Error(), tc.limit) {
			t.Errorf("%s: %v, want quota_exceeded naming %s", tc.name, err, tc.limit)
		}
	}
	if _, err := env.Service.Reserve(ctx, u.ID, user.ReserveRequest{DeviceID: "d1", CPUCores: 2, MemoryMB: 2048, StorageGB: 16}); err != nil {
		t.Fatalf("a device of exactly the free tier: %v", err)
	}
	if _, err := env.Service.Reserve(ctx, u.ID, small("d2")); !apierr.Is(err, apierr.QuotaExceeded) || !strings.Contains(err.Error(), "max_devices") {
		t.Fatalf("second device: %v, want quota_exceeded naming max_devices", err)
	}

	// Room for devices but not for their total cores.
	w := env.Register(t, "walt")
	env.Grant(t, "order-w", w.ID, userevents.Limits{MaxDevices: 5, MaxMemoryMB: 10_000, MaxStorageGB: 100})
	for i, want := range []bool{true, true, false} { // 1 + 1 fit in 2 cores, the third does not
		_, err := env.Service.Reserve(ctx, w.ID, small(fmt.Sprintf("w%d", i)))
		if want != (err == nil) || (!want && !strings.Contains(err.Error(), "max_cpu_cores")) {
			t.Fatalf("device %d: %v", i, err)
		}
	}
	if q := quotaOf(t, env, w.ID); q.Usage.CPUCores != 2 || q.Usage.Devices != 2 {
		t.Fatalf("usage = %+v", q.Usage)
	}
	var limit, device string
	if err := env.Pool.QueryRow(ctx, `
SELECT convert_from(payload, 'UTF8')::jsonb #>> '{data,limit}', convert_from(payload, 'UTF8')::jsonb #>> '{data,device_id}'
FROM outbox WHERE type = $1 AND subject = $2`, userevents.EventQuotaExceeded, w.ID).Scan(&limit, &device); err != nil {
		t.Fatalf("want one quota.exceeded event: %v", err)
	}
	if limit != "max_cpu_cores" || device != "w2" {
		t.Fatalf("quota.exceeded names %s of %s, want max_cpu_cores of w2", limit, device)
	}
}

func TestReserveRefusesBadInputAndUnknownUsers(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "xavi")
	for name, req := range map[string]user.ReserveRequest{
		"no device id":   {CPUCores: 1, MemoryMB: 1},
		"bad device id":  {DeviceID: "a b", CPUCores: 1, MemoryMB: 1},
		"zero cores":     {DeviceID: "d", MemoryMB: 1},
		"negative store": {DeviceID: "d", CPUCores: 1, MemoryMB: 1, StorageGB: -1},
		"huge memory":    {DeviceID: "d", CPUCores: 1, MemoryMB: 1 << 30},
	} {
		if _, err := env.Service.Reserve(ctx, u.ID, req); !apierr.Is(err, apierr.Invalid) {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	for _, id := range []string{"not-a-uuid", "00000000-0000-4000-8000-000000000000"} {
		if _, err := env.Service.Reserve(ctx, id, small("d")); !apierr.Is(err, apierr.NotFound) {
			t.Errorf("user %s: %v, want not_found", id, err)
		}
	}
}

func TestReleaseFreesEverythingAndUnknownDevicesAreHarmless(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "yara")
	other := env.Register(t, "zeno")
	env.Grant(t, "order-1", u.ID, sevenDevices)
	for _, d := range []string{"a", "b"} {
		if _, err := env.Service.Reserve(ctx, u.ID, small(d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Service.Start(ctx, u.ID, user.DeviceRequest{DeviceID: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ userID, device string }{{u.ID, "unknown"}, {other.ID, "a"}} {
		st, err := env.Service.Release(ctx, tc.userID, user.DeviceRequest{DeviceID: tc.device})
		if err != nil || st.Reserved {
			t.Fatalf("release of %s by %s: %+v, %v", tc.device, tc.userID, st, err)
		}
	}
	if q := quotaOf(t, env, u.ID); q.Usage != (user.Usage{Devices: 2, RunningDevices: 1, CPUCores: 2, MemoryMB: 2048, StorageGB: 4}) {
		t.Fatalf("usage after harmless releases = %+v", q.Usage)
	}
	for range 2 {
		if _, err := env.Service.Release(ctx, u.ID, user.DeviceRequest{DeviceID: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if q := quotaOf(t, env, u.ID); q.Usage != (user.Usage{Devices: 1, CPUCores: 1, MemoryMB: 1024, StorageGB: 2}) {
		t.Fatalf("usage after releasing the running device = %+v", q.Usage)
	}
	if _, err := env.Service.Release(ctx, u.ID, user.DeviceRequest{DeviceID: "b"}); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf(t, env, u.ID); q.Usage != (user.Usage{}) {
		t.Fatalf("usage after releasing everything = %+v", q.Usage)
	}
}

func TestStartAndStopCountRunningDevicesIdempotently(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "abel")
	env.Grant(t, "order-1", u.ID, sevenDevices) // 3 running
	for i := range 4 {
		if _, err := env.Service.Reserve(ctx, u.ID, small(fmt.Sprintf("d%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	start := func(d string) (user.DeviceState, error) {
		return env.Service.Start(ctx, u.ID, user.DeviceRequest{DeviceID: d})
	}
	for range 2 {
		st, err := start("d0")
		if err != nil || !st.Running || !st.Reserved {
			t.Fatalf("start d0: %+v, %v", st, err)
		}
	}
	if q := quotaOf(t, env, u.ID); q.Usage.RunningDevices != 1 {
		t.Fatalf("running = %d after starting one device twice", q.Usage.RunningDevices)
	}
	for _, d := range []string{"d1", "d2"} {
		if _, err := start(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := start("d3"); !apierr.Is(err, apierr.QuotaExceeded) || !strings.Contains(err.Error(), "max_running_devices") {
		t.Fatalf("fourth start: %v, want quota_exceeded naming max_running_devices", err)
	}
	if _, err := start("nope"); !apierr.Is(err, apierr.NotFound) {
		t.Fatalf("start of an unreserved device: %v, want not_found", err)
	}
	for range 2 {
		st, err := env.Service.Stop(ctx, u.ID, user.DeviceRequest{DeviceID: "d1"})
		if err != nil || st.Running || !st.Reserved {
			t.Fatalf("stop d1: %+v, %v", st, err)
		}
	}
	if st, err := env.Service.Stop(ctx, u.ID, user.DeviceRequest{DeviceID: "nope"}); err != nil || st.Reserved || st.Running {
		t.Fatalf("stop of an unreserved device: %+v, %v", st, err)
	}
	if _, err := start("d3"); err != nil {
		t.Fatalf("start after a stop freed a slot: %v", err)
	}
	if q := quotaOf(t, env, u.ID); q.Usage.RunningDevices != 3 {
		t.Fatalf("running = %d, want 3", q.Usage.RunningDevices)
	}
}

func TestConcurrentStartsNeverOverrunTheRunningLimit(t *testing.T) {
	t.Parallel()
	env := usertest.New(t)
	u := env.Register(t, "bert")
	env.Grant(t, "order-1", u.ID, sevenDevices) // 7 devices, 3 running
	for i := range 7 {
		if _, err := env.Service.Reserve(ctx, u.ID, small(fmt.Sprintf("d%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 70 {
		wg.Go(func() {
			_, err := env.Service.Start(ctx, u.ID, user.DeviceRequest{DeviceID: fmt.Sprintf("d%d", i%7)})
			if err != nil && !apierr.Is(err, apierr.QuotaExceeded) {
				t.Errorf("start: %v", err)
			}
		})
	}
	wg.Wait()
	if q := quotaOf(t, env, u.ID); q.Usage.RunningDevices != 3 {
		t.Fatalf("running counter = %d, want 3", q.Usage.RunningDevices)
	}
	if n := count(t, env, `SELECT count(*) FROM quota_reservations WHERE user_id = $1 AND running`, u.ID); n != 3 {
		t.Fatalf("%d reservations marked running, want 3", n)
	}
}
