package device_test

import (
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestPhoneMetricsCountPhonesByStateAndTimeToFirstRunning(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	m := metrics.New()
	if err := env.Service.ReportTo(m); err != nil {
		t.Fatal(err)
	}
	a := env.User(t, "metered")
	env.Grant(t, a.ID, roomy(2, 2))
	up := create(t, env, a)
	waiting := create(t, env, a)
	t0 := time.Now().UTC()
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, up.ID, t0))
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, up.ID, t0.Add(time.Second)))
	wantState(t, env, a, up.ID, device.StateRunning)
	pending := get(t, env, a, waiting.ID).State

	// The gauge is read from the database at each scrape.
	for state, want := range map[string]float64{string(device.StateRunning): 1, string(pending): 1} {
		if got := phones(t, m, state); got != want {
			t.Fatalf("cloudphone_phones{state=%q} = %v, want %v", state, got, want)
		}
	}
	if got := histogramCount(t, m); got != 1 {
		t.Fatalf("create-to-running observations = %d, want 1 (one phone reached running once)", got)
	}

	// A second running report (a restart) is not a first running.
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, up.ID, t0.Add(2*time.Second)))
	if got := histogramCount(t, m); got != 1 {
		t.Fatalf("create-to-running observations after a repeated start = %d, want 1", got)
	}
}

func phones(t *testing.T, m *metrics.Metrics, state string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "cloudphone_phones" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == state {
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func histogramCount(t *testing.T, m *metrics.Metrics) uint64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "cloudphone_phone_create_to_running_seconds" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("cloudphone_phone_create_to_running_seconds is not registered")
	return 0
}
