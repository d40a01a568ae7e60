package devicereports_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/devicereports"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

// appFact is device-runtime's fact typ about pkg at version on device id.
func appFact(t *testing.T, typ, id, pkg string, version int64, at time.Time, reason string) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/device/device-runtime", id, deviceevents.AppFact{
		SchemaVersion: 1, DeviceID: id, UserID: "u", AppID: "00000000-0000-4000-8000-0000000000a1", Package: pkg,
		VersionCode: version, Reason: reason, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAppFactsSettleTheInstallationOnceAndStaleOrMisfitOnesChangeNothing(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	fn := devicereports.New(env.Service, logging.Discard())
	a := env.User(t, "alice")
	ctx := context.Background()
	d, err := env.Service.Create(ctx, a.Principal, device.CreateRequest{Name: "p", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	requested := time.Now().UTC().Truncate(time.Microsecond)
	// An install of version 2 under way, as InstallApp records it.
	if _, err := env.Pool.Exec(ctx, `INSERT INTO device_apps (device_id, package, user_id, app_id, version_code, state, requested_at)
VALUES ($1, 'org.example.facts', $2, '00000000-0000-4000-8000-0000000000a1', 2, 'installing', $3)`, d.ID, a.ID, requested); err != nil {
		t.Fatal(err)
	}
	state := func() device.Installation {
		t.Helper()
		l, err := env.Service.ListApps(ctx, a.Principal, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Apps) == 0 {
			return device.Installation{}
		}
		return l.Apps[0]
	}
	handle := func(e event.Event) {
		t.Helper()
		if _, err := fn.Handle(ctx, e); err != nil {
			t.Fatalf("handle %s: %v", e.Type(), err)
		}
	}

	handle(appFact(t, deviceevents.EventAppInstalled, d.ID, "org.example.facts", 1, time.Now(), ""))
	handle(appFact(t, deviceevents.EventAppInstalled, d.ID, "org.example.facts", 2, requested.Add(-time.Second), ""))
	handle(appFact(t, deviceevents.EventAppUninstalled, d.ID, "org.example.facts", 2, time.Now(), ""))
	if in := state(); in.State != device.InstallInstalling {
		t.Fatalf("another version's, an earlier request's or an uninstall's fact changed the install: %+v", in)
	}

	failed := appFact(t, deviceevents.EventAppInstallFailed, d.ID, "org.example.facts", 2, time.Now(), deviceevents.AppReasonDigestMismatch)
	handle(failed)
	handle(failed) // a redelivery changes nothing
	if in := state(); in.State != device.InstallFailed || in.Reason != deviceevents.AppReasonDigestMismatch {
		t.Fatalf("after install_failed: %+v", in)
	}
	handle(appFact(t, deviceevents.EventAppInstalled, d.ID, "org.example.facts", 2, time.Now(), ""))
	if in := state(); in.State != device.InstallFailed {
		t.Fatalf("a fact for an install no longer under way changed it: %+v", in)
	}

	if _, err := env.Pool.Exec(ctx, `UPDATE device_apps SET state = 'uninstalling', requested_at = now()`); err != nil {
		t.Fatal(err)
	}
	handle(appFact(t, deviceevents.EventAppUninstalled, d.ID, "org.example.facts", 2, time.Now().Add(time.Second), ""))
	if in := state(); in.Package != "" {
		t.Fatalf("still listed after uninstalled: %+v", in)
	}

	bad := event.New()
	bad.SetID("bad-app-1")
	bad.SetType(deviceevents.EventAppInstalled)
	bad.SetSource("/cloudphone/device/device-runtime")
	_ = bad.SetData(event.ApplicationJSON, []byte(`{"device_id": 7}`))
	if _, err := fn.Handle(ctx, bad); function.EventStatus(err) != 422 {
		t.Fatalf("undecodable fact: %v (status %d), want permanent", err, function.EventStatus(err))
	}
	noPkg := appFact(t, deviceevents.EventAppInstalled, d.ID, "", 2, time.Now(), "")
	if _, err := fn.Handle(ctx, noPkg); function.EventStatus(err)/100 != 4 || function.EventStatus(err) == 409 {
		t.Fatalf("fact without a package: %v, want permanent", err)
	}
}
