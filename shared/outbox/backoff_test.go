package outbox_test

import (
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/shared/outbox"
)

func TestBackoffDoublesFromBaseUpToMax(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opt      outbox.Options
		attempts int
		want     time.Duration
	}{
		{"defaults, first failure", outbox.Options{}, 1, 500 * time.Millisecond},
		{"defaults, second failure", outbox.Options{}, 2, time.Second},
		{"defaults, seventh failure", outbox.Options{}, 7, 32 * time.Second},
		{"defaults, capped at a minute", outbox.Options{}, 8, time.Minute},
		{"defaults, far past the cap", outbox.Options{}, 1000, time.Minute},
		{"custom", outbox.Options{BaseBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, 3, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.opt.Backoff(tt.attempts); got != tt.want {
				t.Errorf("Backoff(%d) = %v, want %v", tt.attempts, got, tt.want)
			}
		})
	}
}
