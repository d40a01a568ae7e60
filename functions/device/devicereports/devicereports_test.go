package devicereports_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/devicereports"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestReportsDriveTheDeviceAndBadPayloadsArePermanent(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	fn := devicereports.New(env.Service, logging.Discard())
	a := env.User(t, "alice")
	ctx := context.Background()
	d, err := env.Service.Create(ctx, a.Principal, device.CreateRequest{Name: "p", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	started := devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, time.Now())
	for range 2 { // a redelivery is acknowledged and changes nothing
		if _, err := fn.Handle(ctx, started); err != nil {
			t.Fatalf("handle started: %v", err)
		}
	}
	got, err := env.Service.Get(ctx, a.Principal, d.ID)
	if err != nil || got.State != device.StateRunning {
		t.Fatalf("device = %+v, %v", got, err)
	}
	if n := len(env.Outbox(t, deviceevents.EventRunning, d.ID)); n != 1 {
		t.Fatalf("%d running facts", n)
	}

	bad := event.New()
	bad.SetID("bad-1")
	bad.SetType(deviceevents.EventRuntimeStarted)
	bad.SetSource("/cloudphone/device/device-runtime")
	_ = bad.SetData(event.ApplicationJSON, []byte(`{"device_id": 7}`))
	if _, err := fn.Handle(ctx, bad); function.EventStatus(err) != 422 {
		t.Fatalf("undecodable report: %v (status %d), want permanent", err, function.EventStatus(err))
	}
	noID := devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, time.Now(), func(r *deviceevents.RuntimeReport) { r.DeviceID = "x" })
	noID.SetSubject("")
	_, err = fn.Handle(ctx, noID)
	if status := function.EventStatus(err); status/100 != 4 || status == 409 {
		t.Fatalf("report without a device id: %v (status %d), want permanent", err, status)
	}
}
