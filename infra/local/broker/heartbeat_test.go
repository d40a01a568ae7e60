package broker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
)

// Environment of the broker process TestDyingBrokerProcess runs.
const (
	envDyingDB    = "BROKER_TEST_DYING_DB"
	envDyingOwner = "BROKER_TEST_DYING_OWNER"
)

const (
	typeBeat      = "cloudphone.test.heartbeat"
	testHeartbeat = 200 * time.Millisecond
)

var beatTriggers = []Trigger{trigger("t-beat", typeBeat, "fn", Delivery{Timeout: 2 * time.Minute})}

// TestDyingBrokerProcess is not a test of its own: it is the broker process
// that TestClaimsOfABrokerThatDiedAreTakenOverByHeartbeat kills mid-delivery.
// It runs a broker whose every delivery hangs, until it is killed.
func TestDyingBrokerProcess(t *testing.T) {
	name := os.Getenv(envDyingDB)
	if name == "" {
		t.Skip("run by TestClaimsOfABrokerThatDiedAreTakenOverByHeartbeat")
	}
	pool, err := db.Open(context.Background(), dbtest.BaseURL(t), name, Migrations)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	hang := DelivererFunc(func(ctx context.Context, _ string, _ event.Event) (int, *event.Event, error) {
		select {} // until the process is killed
	})
	b, err := New(pool, beatTriggers, hang, Options{Owner: os.Getenv(envDyingOwner), HeartbeatInterval: testHeartbeat,
		PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_ = b.Run(context.Background())
}

// claimOwner returns the owner holding the claim of the only delivery row,
// or "" when it is not claimed.
func (f fixture) claimOwner(t *testing.T) string {
	t.Helper()
	var owner *string
	err := f.pool.QueryRow(context.Background(),
		`SELECT CASE WHEN claim IS NULL THEN NULL ELSE claim_owner END FROM broker_deliveries`).Scan(&owner)
	if err != nil {
		t.Fatalf("read the claim: %v", err)
	}
	if owner == nil {
		return ""
	}
	return *owner
}

// Two brokers of different owners share a database. While the one that
// claimed a delivery is alive (its delivery hanging far longer than the
// heartbeat expiry), the other never takes the delivery; once that process is
// killed without any cleanup and never comes back, the other delivers it
// within seconds instead of after the lease (here two and a half minutes).
func TestClaimsOfABrokerThatDiedAreTakenOverByHeartbeat(t *testing.T) {
	t.Parallel()
	f := setup(t)
	survivor := f.broker(t, beatTriggers, Options{Owner: "host-b:/data", HeartbeatInterval: testHeartbeat,
		PollInterval: 20 * time.Millisecond})
	send(t, survivor, newEvent(t, typeBeat))

	dying := exec.Command(os.Args[0], "-test.run=^TestDyingBrokerProcess$", "-test.count=1")
	dying.Env = append(os.Environ(), envDyingDB+"="+f.pool.Config().ConnConfig.Database, envDyingOwner+"=host-a:/data")
	var out strings.Builder
	dying.Stdout, dying.Stderr = &out, &out
	if err := dying.Start(); err != nil {
		t.Fatalf("start the dying broker: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- dying.Wait() }()
	t.Cleanup(func() {
		_ = dying.Process.Kill()
		<-exited
	})
	eventually(t, "the dying broker claimed the delivery", func() bool { return f.claimOwner(t) == "host-a:/data" })

	run(t, survivor)
	alive := testHeartbeat * HeartbeatExpiry * 3
	time.Sleep(alive)
	if n := len(f.subs.to("fn")); n != 0 {
		t.Fatalf("the surviving broker delivered %d times while the claiming broker was alive", n)
	}
	if owner := f.claimOwner(t); owner != "host-a:/data" {
		t.Fatalf("after %v the claim is held by %q, want the live host-a:/data", alive, owner)
	}

	if err := dying.Process.Kill(); err != nil {
		t.Fatalf("kill the claiming broker: %v", err)
	}
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the claiming broker ended with %v, want killed; output:\n%s", err, out.String())
	}
	exited <- errors.New("already waited")
	killed := time.Now()
	eventually(t, "the surviving broker delivered the dead broker's claimed delivery", func() bool {
		return len(f.subs.to("fn")) == 1 && f.rows(t, "pending") == 0
	})
	took := time.Since(killed)
	t.Logf("delivered %s after the claiming broker was killed (heartbeat %v, expiry %d beats)",
		took.Round(time.Millisecond), testHeartbeat, HeartbeatExpiry)
	if limit := testHeartbeat*(HeartbeatExpiry+2) + time.Second; took > limit {
		t.Errorf("took %v, want at most %v", took, limit)
	}
}

// With the default heartbeat a broker takes over the deliveries of a dead one
// within HeartbeatExpiry+1 intervals, inside the 10 s within which a saga
// interrupted by a crash must go on.
func TestDefaultHeartbeatTakesOverWithinTenSeconds(t *testing.T) {
	t.Parallel()
	if worst := DefaultHeartbeat * (HeartbeatExpiry + 1); worst > 7*time.Second {
		t.Errorf("a dead broker's claims wait up to %v with the defaults; leave time for the saga within 10 s", worst)
	}
	f := setup(t)
	b := f.broker(t, beatTriggers, Options{Owner: "host-b:/data"})
	send(t, b, newEvent(t, typeBeat))
	// A broker of another owner claimed the delivery and beat for the last
	// time just before it died.
	if _, err := f.pool.Exec(context.Background(), `
		INSERT INTO broker_owners (owner, beat_at) VALUES ('host-a:/data', now());
		UPDATE broker_deliveries SET claim = 'host-a:/data/x', claim_owner = 'host-a:/data', attempts = 1,
			next_attempt_at = now() + interval '150 seconds'`); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	run(t, b)
	eventually(t, "the delivery of the dead broker was delivered", func() bool { return len(f.subs.to("fn")) == 1 })
	took := time.Since(died)
	t.Logf("delivered %s after the other broker's last heartbeat", took.Round(time.Millisecond))
	if took < DefaultHeartbeat*HeartbeatExpiry {
		t.Errorf("delivered after %v, before the owner's heartbeat expired (%v)", took, DefaultHeartbeat*HeartbeatExpiry)
	}
}
