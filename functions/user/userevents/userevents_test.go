package userevents_test

import (
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/validate"
)

func TestLimitsCheckAcceptsTheBoundsAndNamesEachAmountBeyondThem(t *testing.T) {
	t.Parallel()
	var p validate.Problems
	userevents.Limits{MaxDevices: userevents.MaxAmount, IdleMinutes: userevents.MaxIdleMinutes}.Check("quota.", &p)
	if err := p.Err(); err != nil {
		t.Fatalf("the bounds themselves are refused: %v", err)
	}
	userevents.Limits{MaxDevices: userevents.MaxAmount + 1, DeviceMaxCPUCores: -1, IdleMinutes: userevents.MaxIdleMinutes + 1}.Check("quota.", &p)
	err := p.Err()
	if err == nil || p.Len() != 3 {
		t.Fatalf("want three problems, got %d: %v", p.Len(), err)
	}
	for _, field := range []string{"quota.max_devices", "quota.device_max_cpu_cores", "quota.idle_minutes"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("%v does not name %s", err, field)
		}
	}
}
