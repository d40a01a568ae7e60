package deviceevents_test

import (
	"reflect"
	"testing"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
)

// Fact reads every metered fact with one type, so each fact's payload may
// carry only fields Fact knows, with the same JSON name and Go type.
func TestFactCoversEveryMeteredFactsPayload(t *testing.T) {
	t.Parallel()
	fact := map[string]reflect.Type{}
	ft := reflect.TypeFor[deviceevents.Fact]()
	for i := range ft.NumField() {
		fact[ft.Field(i).Name] = ft.Field(i).Type
	}
	for _, payload := range []any{deviceevents.Running{}, deviceevents.Stopped{}, deviceevents.Failed{}, deviceevents.Deleted{}} {
		pt := reflect.TypeOf(payload)
		for i := range pt.NumField() {
			f := pt.Field(i)
			if fact[f.Name] != f.Type {
				t.Errorf("%s.%s (%s) is not a field of Fact", pt.Name(), f.Name, f.Type)
			}
		}
	}
}

func TestCommandTypeNamesTheDeclaredCommands(t *testing.T) {
	t.Parallel()
	for op, want := range map[string]string{
		deviceevents.OpCreate: deviceevents.EventCreateRequested, deviceevents.OpStart: deviceevents.EventStartRequested,
		deviceevents.OpStop: deviceevents.EventStopRequested, deviceevents.OpRestart: deviceevents.EventRestartRequested,
		deviceevents.OpDelete: deviceevents.EventDeleteRequested,
	} {
		if got := deviceevents.CommandType(op); got != want {
			t.Errorf("CommandType(%q) = %q, want %q", op, got, want)
		}
	}
}
