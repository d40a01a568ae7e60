package webhooksig_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

func TestVerifyAcceptsASignatureOfTheBodyWithinToleranceAndRefusesEveryOther(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_900_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	good := webhooksig.Sign("s3cret", now, body)
	if err := webhooksig.Verify("s3cret", good, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
	rotated := strings.Replace(good, ",v1=", ",v1=deadbeef,v1=", 1) // an old secret's signature first
	if err := webhooksig.Verify("s3cret", rotated, body, now, time.Minute); err != nil {
		t.Fatalf("a header with another v1 besides the right one refused: %v", err)
	}
	for name, tc := range map[string]struct {
		header string
		body   []byte
		want   error
	}{
		"empty":        {"", body, webhooksig.ErrMalformed},
		"no v1":        {"t=1900000000", body, webhooksig.ErrMalformed},
		"no equals":    {"t=1900000000,junk", body, webhooksig.ErrMalformed},
		"wrong secret": {webhooksig.Sign("other", now, body), body, webhooksig.ErrWrong},
		"other body":   {good, []byte(`{"id":"evt_2"}`), webhooksig.ErrWrong},
		"stale":        {webhooksig.Sign("s3cret", now.Add(-6*time.Minute), body), body, webhooksig.ErrStale},
		"future":       {webhooksig.Sign("s3cret", now.Add(6*time.Minute), body), body, webhooksig.ErrStale},
	} {
		if err := webhooksig.Verify("s3cret", tc.header, tc.body, now, 5*time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
