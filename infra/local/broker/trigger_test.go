package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sampleTriggers = `# Broker and triggers of the user context.
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: cloudphone
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: user-registered-to-notification-welcome
spec:
  broker: cloudphone
  filters:
    - exact:
        type: cloudphone.user.registered
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: notification-welcome
  delivery:
    retry: 5
    backoffPolicy: exponential
    backoffDelay: PT1S
    timeout: PT10S
    deadLetterSink:
      ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: dead-letter
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: outbox-redrive
spec:
  schedule: "*/5 * * * *"
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: cloudphone
---
`

const legacyTrigger = `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: audit-everything
spec:
  broker: cloudphone
  filter:
    attributes:
      source: /cloudphone/user/auth-register
  subscriber:
    uri: http://audit.example/events
  delivery:
    backoffPolicy: linear
    backoffDelay: PT0.5S
`

func TestLoadTriggersReadsKnativeV1TriggersAndIgnoresOtherKinds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "user.yaml", sampleTriggers)
	write(t, dir, "audit.yml", legacyTrigger)
	write(t, dir, "README.md", "not yaml: [")

	got, err := LoadTriggers(dir)
	if err != nil {
		t.Fatalf("LoadTriggers: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d triggers, want 2: %+v", len(got), got)
	}
	audit, welcome := got[0], got[1] // file-name order
	if welcome.Name != "user-registered-to-notification-welcome" || welcome.Broker != "cloudphone" ||
		welcome.Subscriber != "notification-welcome" {
		t.Errorf("welcome trigger = %+v", welcome)
	}
	if len(welcome.Filters) != 1 || welcome.Filters[0].Exact["type"] != "cloudphone.user.registered" {
		t.Errorf("welcome filters = %+v", welcome.Filters)
	}
	wantDelivery := Delivery{Retry: 5, BackoffPolicy: BackoffExponential, BackoffDelay: time.Second,
		Timeout: 10 * time.Second, DeadLetterSink: "dead-letter"}
	if welcome.Delivery != wantDelivery {
		t.Errorf("welcome delivery = %+v, want %+v", welcome.Delivery, wantDelivery)
	}
	if audit.Subscriber != "http://audit.example/events" || audit.Attributes["source"] != "/cloudphone/user/auth-register" {
		t.Errorf("audit trigger = %+v", audit)
	}
	if audit.Delivery.BackoffPolicy != BackoffLinear || audit.Delivery.BackoffDelay != 500*time.Millisecond {
		t.Errorf("audit delivery = %+v", audit.Delivery)
	}
}

func TestLoadTriggersRejectsWhatKnativeWouldRefuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		replace [2]string // applied to a valid single Trigger
		want    string
	}{
		{"go-style backoffDelay", [2]string{"backoffDelay: PT1S", "backoffDelay: 500ms"}, "backoffDelay"},
		{"backoffDelay finer than the period package keeps", [2]string{"backoffDelay: PT1S", "backoffDelay: PT0.05S"}, "finer than 0.1 s"},
		{"bad timeout", [2]string{"timeout: PT10S", "timeout: ten seconds"}, "delivery.timeout"},
		{"unknown backoff policy", [2]string{"backoffPolicy: exponential", "backoffPolicy: fibonacci"}, "fibonacci"},
		{"unknown dialect", [2]string{"- exact:", "- regex:"}, "unknown filter dialect"},
		{"cesql that does not parse", [2]string{"- exact:\n        type: cloudphone.user.registered", "- cesql: \"type = \""}, "cesql"},
		{"two dialects in one filter", [2]string{"        type: cloudphone.user.registered", "        type: cloudphone.user.registered\n      prefix:\n        source: /cloudphone"}, "multiple dialects"},
		{"bad attribute name", [2]string{"        type: cloudphone.user.registered", "        Type: cloudphone.user.registered"}, "Attribute name must start with a letter"},
		{"no subscriber", [2]string{"      name: notification-welcome", "      name: \"\""}, "no subscriber"},
		{"wrong api version", [2]string{"apiVersion: eventing.knative.dev/v1\nkind: Trigger", "apiVersion: eventing.knative.dev/v1beta1\nkind: Trigger"}, "apiVersion"},
	}
	valid := strings.SplitN(sampleTriggers, "---\n", 3)[1]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := strings.Replace(valid, tc.replace[0], tc.replace[1], 1)
			if doc == valid {
				t.Fatalf("replacement %q did not apply", tc.replace[0])
			}
			dir := t.TempDir()
			write(t, dir, "t.yaml", doc)
			_, err := LoadTriggers(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadTriggers error = %v, want one mentioning %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "t.yaml document 1") {
				t.Errorf("error %q does not name the file and document", err)
			}
		})
	}
}

func TestLoadTriggersRejectsDuplicateNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "a.yaml", legacyTrigger)
	write(t, dir, "b.yaml", legacyTrigger)
	if _, err := LoadTriggers(dir); err == nil || !strings.Contains(err.Error(), "already defined") {
		t.Fatalf("LoadTriggers error = %v, want a duplicate-name error", err)
	}
}

func TestBackoffGrowsByPolicy(t *testing.T) {
	t.Parallel()
	exp := Delivery{BackoffPolicy: BackoffExponential, BackoffDelay: 100 * time.Millisecond}
	lin := Delivery{BackoffPolicy: BackoffLinear, BackoffDelay: 100 * time.Millisecond}
	for n, want := range map[int][2]time.Duration{1: {200 * time.Millisecond, 100 * time.Millisecond},
		2: {400 * time.Millisecond, 200 * time.Millisecond}, 3: {800 * time.Millisecond, 300 * time.Millisecond}} {
		if got := exp.Backoff(n); got != want[0] {
			t.Errorf("exponential Backoff(%d) = %v, want %v", n, got, want[0])
		}
		if got := lin.Backoff(n); got != want[1] {
			t.Errorf("linear Backoff(%d) = %v, want %v", n, got, want[1])
		}
	}
	if got := exp.Backoff(200); got != maxBackoff {
		t.Errorf("exponential Backoff(200) = %v, want the %v cap", got, maxBackoff)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
