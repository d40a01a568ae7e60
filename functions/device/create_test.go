package device_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestCreateRecordsCreatingOnANodeWithTheLowestFreePortAndSendsTheCommand(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := create(t, env, a)
	if d.State != device.StateCreating || d.ADBPort != 28000 || d.NodeName != "local" || d.NodeID == "" ||
		d.Image != device.DefaultImage || d.StorageGB != 8 || d.UserID != a.ID {
		t.Fatalf("created device = %+v", d)
	}
	q := env.Quota(t, a.ID)
	if q.Usage.Devices != 1 || q.Usage.RunningDevices != 1 || q.Usage.CPUCores != 1 || q.Usage.MemoryMB != 1024 || q.Usage.StorageGB != 8 {
		t.Fatalf("quota usage after create = %+v", q.Usage)
	}
	cmds := env.Outbox(t, deviceevents.EventCreateRequested, d.ID)
	if len(cmds) != 1 || cmds[0]["adb_port"] != float64(28000) || cmds[0]["node_id"] != d.NodeID ||
		cmds[0]["docker_host"] != "unix:///var/run/docker.sock" || cmds[0]["image"] != device.DefaultImage ||
		cmds[0]["user_id"] != a.ID || cmds[0]["cpu_cores"] != float64(1) || cmds[0]["memory_mb"] != float64(1024) {
		t.Fatalf("create command = %v", cmds)
	}
	if n := count(t, env, `SELECT allocated_cpu_cores FROM nodes WHERE id = $1`, d.NodeID); n != 1 {
		t.Fatalf("node allocated cpu = %d, want 1", n)
	}
	if n := count(t, env, `SELECT port FROM device_ports WHERE device_id = $1`, d.ID); n != 28000 {
		t.Fatalf("port row = %d", n)
	}
}

func TestCreateValidatesTheRequest(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	neg := -1
	for name, req := range map[string]device.CreateRequest{
		"no name":         {CPUCores: 1, MemoryMB: 1024},
		"zero cores":      {Name: "p", MemoryMB: 1024},
		"tiny memory":     {Name: "p", CPUCores: 1, MemoryMB: 1},
		"negative disk":   {Name: "p", CPUCores: 1, MemoryMB: 1024, StorageGB: &neg},
		"unknown image":   {Name: "p", CPUCores: 1, MemoryMB: 1024, Image: "evil/miner:latest"},
		"control in name": {Name: "p\x00", CPUCores: 1, MemoryMB: 1024},
	} {
		_, err := env.Service.Create(bg, a.Principal, req)
		if !apierr.Is(err, apierr.Invalid) {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	if q := env.Quota(t, a.ID); q.Usage.Devices != 0 {
		t.Fatalf("an invalid request reserved quota: %+v", q.Usage)
	}
	d, err := env.Service.Create(bg, a.Principal, device.CreateRequest{Name: "p", CPUCores: 1, MemoryMB: 1024, Image: "cloudphone/phone-standin:latest"})
	if err != nil || d.Image != "cloudphone/phone-standin:latest" {
		t.Fatalf("create with an offered image: %+v %v", d, err)
	}
}

func TestConcurrentCreatesAtTheQuotaEdgeNeverExceedIt(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(2, 2)) // free tier 1 + 2 = 3 devices, 3 running
	const tries = 20
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			_, errs[i] = env.Service.Create(bg, a.Principal, device.CreateRequest{Name: fmt.Sprint("p", i), CPUCores: 1, MemoryMB: 512})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !apierr.Is(err, apierr.QuotaExceeded):
			t.Errorf("create failed with %v, want quota_exceeded", err)
		}
	}
	if ok != 3 {
		t.Fatalf("%d creates accepted, want exactly 3", ok)
	}
	q := env.Quota(t, a.ID)
	if q.Usage.Devices != 3 || q.Usage.RunningDevices != 3 || q.Usage.CPUCores != 3 || q.Usage.MemoryMB != 1536 || q.Usage.StorageGB != 24 {
		t.Fatalf("usage = %+v, want exactly three devices' worth", q.Usage)
	}
	if n := count(t, env, `SELECT count(*) FROM devices WHERE user_id = $1`, a.ID); n != 3 {
		t.Fatalf("%d devices recorded, want 3", n)
	}
}

func TestConcurrentCreatesNeverShareAPortAndAFullPoolReleasesTheQuota(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t, devicetest.Ports(41000, 41007))
	const users = 12
	accounts := make([]devicetest.Account, users)
	for i := range accounts {
		accounts[i] = env.User(t, fmt.Sprintf("user%02d", i))
	}
	errs := make([]error, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() { _, errs[i] = env.Service.Create(bg, accounts[i].Principal, small()) })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case apierr.Is(err, apierr.Unavailable):
			if q := env.Quota(t, accounts[i].ID); q.Usage != (devicetest.Usage{}) {
				t.Errorf("user refused for a full pool still holds quota %+v", q.Usage)
			}
		default:
			t.Errorf("create: %v, want success or unavailable", err)
		}
	}
	if ok != 8 {
		t.Fatalf("%d devices got a port, want all 8 of the pool", ok)
	}
	if n := count(t, env, `SELECT count(DISTINCT adb_port) FROM devices WHERE adb_port BETWEEN 41000 AND 41007`); n != 8 {
		t.Fatalf("%d distinct ports among 8 devices", n)
	}
	if n := count(t, env, `SELECT count(*) FROM device_ports`); n != 8 {
		t.Fatalf("%d port rows, want 8", n)
	}
}

func TestPlacementNeedsRoomAndSkipsDrainingNodes(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t, devicetest.Node(2, 4096))
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(10, 10))
	big := device.CreateRequest{Name: "big", CPUCores: 2, MemoryMB: 2048}
	if _, err := env.Service.Create(bg, a.Principal, big); err != nil {
		t.Fatal(err)
	}
	_, err := env.Service.Create(bg, a.Principal, big)
	wantCode(t, err, apierr.Unavailable)
	if q := env.Quota(t, a.ID); q.Usage.Devices != 1 {
		t.Fatalf("a device refused for capacity kept its quota: %+v", q.Usage)
	}
	nodes, err := env.Service.Nodes(bg)
	if err != nil || len(nodes) != 1 || nodes[0].AllocatedCPUCores != 2 || nodes[0].Devices != 1 {
		t.Fatalf("nodes = %+v, %v", nodes, err)
	}
	cpu, draining := 100, device.NodeDraining
	if _, err := env.Service.UpdateNode(bg, nodes[0].ID, device.NodeUpdate{CPUCores: &cpu, Status: &draining}); err != nil {
		t.Fatal(err)
	}
	_, err = env.Service.Create(bg, a.Principal, small())
	wantCode(t, err, apierr.Unavailable)
	if err := env.Service.RegisterNode(bg, device.NodeConfig{Name: "second", DockerHost: "tcp://10.0.0.2:2376", ADBHost: "10.0.0.2", CPUCores: 8, MemoryMB: 8192}); err != nil {
		t.Fatal(err)
	}
	d, err := env.Service.Create(bg, a.Principal, small())
	if err != nil || d.NodeName != "second" {
		t.Fatalf("create with a second node: %+v %v", d, err)
	}
	if c := env.Outbox(t, deviceevents.EventCreateRequested, d.ID); c[0]["docker_host"] != "tcp://10.0.0.2:2376" {
		t.Fatalf("command names docker host %v", c[0]["docker_host"])
	}
}
