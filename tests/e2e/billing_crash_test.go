package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/fault"
)

var (
	platformBinOnce sync.Once
	platformBin     string
	platformBinErr  error
)

// buildPlatform builds the platform command once per test run.
func buildPlatform(t testing.TB) string {
	t.Helper()
	platformBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cloudphone-bin-")
		if err != nil {
			platformBinErr = err
			return
		}
		platformBin = filepath.Join(dir, "cloudphone")
		cmd := exec.Command("go", "build", "-o", platformBin, "./assembly/cmd/cloudphone")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			platformBinErr = errors.New(string(out))
		}
	})
	if platformBinErr != nil {
		t.Fatalf("build the platform: %v", platformBinErr)
	}
	return platformBin
}

// platformProcess is the whole platform run as a child process, so that it can be
// killed where it stands.
type platformProcess struct {
	bin, addr string
	env       []string
	cmd       *exec.Cmd
	out       bytes.Buffer
	done      chan error
}

func newProcess(t *testing.T, e env) *platformProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	triggers, err := filepath.Abs("../../triggers")
	if err != nil {
		t.Fatal(err)
	}
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOUDPHONE_") {
			base = append(base, kv)
		}
	}
	for k, v := range e.config() {
		base = append(base, k+"="+v)
	}
	base = append(base, "CLOUDPHONE_ADDR="+addr, "CLOUDPHONE_DATA_DIR="+e.dataDir, "CLOUDPHONE_TRIGGERS_DIR="+triggers,
		"CLOUDPHONE_ADMIN_PASSWORD="+e.adminPassword, "SAGA_DEADLINE=8s", "LOG_LEVEL=warn")
	p := &platformProcess{bin: buildPlatform(t), addr: addr, env: base}
	t.Cleanup(func() {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// start runs the platform, dying at faultPoint when one is named, and waits
// until it is ready.
func (p *platformProcess) start(t *testing.T, faultPoint string) {
	t.Helper()
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = append(p.env, fault.Env+"="+faultPoint)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait() }()
	eventually(t, 60*time.Second, "the platform did not get ready", func() bool {
		resp, err := http.Get("http://" + p.addr + "/health/readiness")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// died waits for the process to die at its fault point.
func (p *platformProcess) died(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != fault.ExitStatus {
			t.Fatalf("the platform exited with %d, not at its fault point:\n%s", code, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the platform never reached its fault point:\n%s", p.out.String())
	}
}

func (p *platformProcess) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the platform did not stop on SIGTERM")
	}
}

// The platform process is killed right after each step of the purchase saga
// commits, then started again: every saga still ends active or failed, with
// the balance, the ledger and the quota agreeing with that end.
func TestBillingSagaEndsConsistentWhenThePlatformIsKilledAtEachStep(t *testing.T) {
	t.Parallel()
	buildPlatform(t)
	// The debit commits with the order (StepDebited comes with
	// StepOrderCreated), so killing at order.created covers it.
	for _, step := range []string{billing.StepOrderCreated, billing.StepGrantReceived, billing.StepActivated} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.adminPassword = billingAdminPassword
			proc := newProcess(t, e)
			proc.start(t, step)
			p := billingPlatform{base: "http://" + proc.addr, admin: billingLogin(t, "http://"+proc.addr, "admin", billingAdminPassword),
				signer: signerOf(t, e.dataDir)}
			p.db = billingDB(t, e)

			var plan billing.Plan
			if st := call(t, "GET", p.base+"/api/v1/plans/basic", nil, &plan); st != http.StatusOK {
				t.Fatalf("plan: %d", st)
			}
			const credit = 5000
			u, tok := p.buyer(t, "crash", credit)
			before := p.quota(t, tok)

			// The answer may never come: the process may die first.
			req, _ := http.NewRequest("POST", p.base+"/api/v1/orders", strings.NewReader(`{"plan_id":"basic"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Idempotency-Key", "crash")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			proc.died(t)
			proc.start(t, "")
			defer proc.stop(t)

			var page billing.OrdersPage
			if st := call(t, "GET", p.base+"/api/v1/orders", nil, &page, billingBearer(tok)...); st != http.StatusOK || len(page.Orders) != 1 {
				t.Fatalf("orders after the restart: %d %+v", st, page)
			}
			id := page.Orders[0].ID
			var o billing.Order
			deadline := time.Now().Add(45 * time.Second)
			swept := false
			for {
				o = p.getOrder(t, tok, id)
				if o.Status == billing.OrderActive || o.Status == billing.OrderFailed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("order %s never settled: %+v\n%s", id, o, proc.out.String())
				}
				if !swept && time.Since(o.CreatedAt) > 10*time.Second {
					// Past its deadline: the sweeper (every minute) compensates it;
					// don't wait for the minute.
					p.postEvent(t, billingevents.EventSweepRequested, "", map[string]string{})
					swept = true
				}
				time.Sleep(100 * time.Millisecond)
			}
			wantBalance, wantQuota := int64(credit), before
			if o.Status == billing.OrderActive {
				wantBalance, wantQuota = credit-plan.Price, quotaPlus(before, plan.Quota)
			}
			// A revoke may still be on its way after a failure: give it time.
			eventually(t, 20*time.Second, "balance and quota never agreed with the order's end", func() bool {
				return p.balance(t, tok) == wantBalance && p.quota(t, tok) == wantQuota
			})
			p.checkLedger(t, u.ID)
			t.Logf("killed after %s: order ended %s (%s)", step, o.Status, o.FailureReason)
		})
	}
}

// billingDB opens e's billing database directly, for the ledger checks.
func billingDB(t *testing.T, e env) *pgxpool.Pool {
	t.Helper()
	u, err := url.Parse(mustEnv(t, "DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + e.prefix + billing.Database
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// signerOf signs sender tokens with the service-token key a platform made
// under dataDir on its first start.
func signerOf(t *testing.T, dataDir string) *eventauth.Signer {
	t.Helper()
	seed, err := os.ReadFile(filepath.Join(dataDir, "keys", "service-token.seed"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := eventauth.NewSigner(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
