package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

var bg = context.Background()

// roomy is a grant that lifts every limit far above what a test uses, except
// the device and running counts given.
func roomy(devices, running int) devicetest.Limits {
	return devicetest.Limits{MaxDevices: devices, MaxRunningDevices: running, MaxCPUCores: 1000, MaxMemoryMB: 1 << 20,
		MaxStorageGB: 10000, DeviceMaxCPUCores: 16, DeviceMaxMemoryMB: 65536}
}

func small() device.CreateRequest {
	return device.CreateRequest{Name: "phone", CPUCores: 1, MemoryMB: 1024}
}

func create(t *testing.T, env devicetest.Env, a devicetest.Account) device.Device {
	t.Helper()
	d, err := env.Service.Create(bg, a.Principal, small())
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return d
}

func get(t *testing.T, env devicetest.Env, a devicetest.Account, id string) device.Device {
	t.Helper()
	d, err := env.Service.Get(bg, a.Principal, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return d
}

// running creates a device for a and reports it created and started.
func running(t *testing.T, env devicetest.Env, a devicetest.Account) device.Device {
	t.Helper()
	d := create(t, env, a)
	now := time.Now()
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, d.ID, now))
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, now.Add(time.Millisecond)))
	d = get(t, env, a, d.ID)
	if d.State != device.StateRunning {
		t.Fatalf("state after created+started = %s, want running", d.State)
	}
	return d
}

func wantState(t *testing.T, env devicetest.Env, a devicetest.Account, id string, want device.State) device.Device {
	t.Helper()
	d := get(t, env, a, id)
	if d.State != want {
		t.Fatalf("device %s is %s, want %s", id, d.State, want)
	}
	return d
}

func wantCode(t *testing.T, err error, code apierr.Code) {
	t.Helper()
	if !apierr.Is(err, code) {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

func count(t *testing.T, env devicetest.Env, query string, args ...any) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(bg, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
