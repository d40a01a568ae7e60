package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

// addNode registers a node without an engine check.
func addNode(t *testing.T, env devicetest.Env, name string, cpu int, labels map[string]string) device.Node {
	t.Helper()
	n, err := env.Service.AddNode(bg, device.NodeRegistration{Name: name, DockerHost: "tcp://10.0.0." + name[len(name)-1:] + ":2376",
		ADBHost: "10.0.0.9", CPUCores: cpu, MemoryMB: 65536, Labels: labels}, nil)
	if err != nil {
		t.Fatalf("add node %s: %v", name, err)
	}
	return n
}

// spread counts the devices of each node name.
func spread(t *testing.T, env devicetest.Env) map[string]int {
	t.Helper()
	ns, err := env.Service.Nodes(bg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, n := range ns {
		out[n.Name] = n.Devices
	}
	return out
}

func TestPlacementSpreadsOverNodesByLoadOrPacksWhenConfigured(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{device.PlacementSpread, device.PlacementPack} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			env := devicetest.New(t, devicetest.Node(8, 65536), devicetest.Placement(strategy))
			a := env.User(t, "alice")
			env.Grant(t, a.ID, roomy(20, 20))
			addNode(t, env, "node2", 8, nil)
			for range 6 {
				create(t, env, a)
			}
			got := spread(t, env)
			want := map[string]int{"local": 3, "node2": 3}
			if strategy == device.PlacementPack {
				want = map[string]int{"local": 6, "node2": 0}
			}
			if got["local"] != want["local"] || got["node2"] != want["node2"] {
				t.Fatalf("%s placed %v, want %v", strategy, got, want)
			}
		})
	}
}

func TestPlacementHonoursAskedLabelsAndSkipsDownAndDrainingNodes(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(20, 20))
	gpu := addNode(t, env, "node2", 64, map[string]string{"gpu": "true", "zone": "b"})
	req := small()
	req.NodeLabels = map[string]string{"gpu": "true"}
	for range 3 {
		d, err := env.Service.Create(bg, a.Principal, req)
		if err != nil || d.NodeName != "node2" {
			t.Fatalf("create asking gpu=true: %+v %v", d, err)
		}
	}
	req.NodeLabels = map[string]string{"gpu": "true", "zone": "a"}
	_, err := env.Service.Create(bg, a.Principal, req)
	wantCode(t, err, apierr.Unavailable)
	req.NodeLabels = map[string]string{"GPU": "x y"}
	_, err = env.Service.Create(bg, a.Principal, req)
	wantCode(t, err, apierr.Invalid)

	// Down (as device-runtime marks it): nothing new goes there.
	if _, err := env.Pool.Exec(bg, `UPDATE nodes SET health = 'down' WHERE id = $1`, gpu.ID); err != nil {
		t.Fatal(err)
	}
	req.NodeLabels = map[string]string{"gpu": "true"}
	_, err = env.Service.Create(bg, a.Principal, req)
	wantCode(t, err, apierr.Unavailable)
	if d := create(t, env, a); d.NodeName != "local" {
		t.Fatalf("with node2 down a phone went to %s", d.NodeName)
	}
	ns, _ := env.Service.Nodes(bg)
	for _, n := range ns {
		if n.Name == "node2" && (n.Health != device.NodeDown || n.Labels["zone"] != "b") {
			t.Fatalf("node2 = %+v", n)
		}
	}
}

func TestDrainMovesStoppedDevicesAndOnlyAnEmptyNodeIsDeleted(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t, devicetest.Node(4, 65536))
	a := env.User(t, "alice")
	env.Grant(t, a.ID, roomy(20, 20))
	stopped := running(t, env, a)
	if _, err := env.Service.Stop(bg, a.Principal, stopped.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStopped, stopped.ID, time.Now()))
	wantState(t, env, a, stopped.ID, device.StateStopped)
	live := running(t, env, a)
	ns, _ := env.Service.Nodes(bg)
	localID := ns[0].ID

	// Moving needs a draining node.
	_, err := env.Service.UpdateNode(bg, localID, device.NodeUpdate{MoveStopped: true})
	wantCode(t, err, apierr.Conflict)
	// No other node has room: nothing moves, the node drains.
	draining := device.NodeDraining
	n, err := env.Service.UpdateNode(bg, localID, device.NodeUpdate{Status: &draining, MoveStopped: true})
	if err != nil || n.MovedDevices != 0 || n.Status != device.NodeDraining {
		t.Fatalf("drain without room elsewhere: %+v %v", n, err)
	}
	other := addNode(t, env, "node2", 8, nil)
	n, err = env.Service.UpdateNode(bg, localID, device.NodeUpdate{MoveStopped: true})
	if err != nil || n.MovedDevices != 1 || n.Devices != 1 || n.AllocatedCPUCores != 1 {
		t.Fatalf("drain with room elsewhere: %+v %v", n, err)
	}
	if d := get(t, env, a, stopped.ID); d.NodeID != other.ID || d.State != device.StateStopped || d.ADBPort != stopped.ADBPort {
		t.Fatalf("moved device = %+v", d)
	}
	if d := get(t, env, a, live.ID); d.NodeID != localID {
		t.Fatalf("a running device moved: %+v", d)
	}
	// Its next start creates it afresh on its new node's engine.
	if _, err := env.Service.Start(bg, a.Principal, stopped.ID); err != nil {
		t.Fatal(err)
	}
	if c := env.Outbox(t, deviceevents.EventCreateRequested, stopped.ID); len(c) != 2 || c[1]["node_id"] != other.ID || c[1]["docker_host"] != other.DockerHost {
		t.Fatalf("create commands = %v", c)
	}

	wantCode(t, env.Service.DeleteNode(bg, localID), apierr.Conflict)
	wantCode(t, env.Service.DeleteNode(bg, "00000000-0000-4000-8000-000000000000"), apierr.NotFound)
	if _, err := env.Service.Delete(bg, a.Principal, live.ID); err != nil {
		t.Fatal(err)
	}
	env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeRemoved, live.ID, time.Now()))
	wantState(t, env, a, live.ID, device.StateDeleted)
	if err := env.Service.DeleteNode(bg, localID); err != nil {
		t.Fatalf("delete the drained node: %v", err)
	}
	if got := spread(t, env); len(got) != 1 || got["node2"] != 1 {
		t.Fatalf("nodes after delete = %v", got)
	}
	// Its name and engine are free again.
	if err := env.Service.RegisterNode(bg, device.NodeConfig{Name: "local", DockerHost: "unix:///var/run/docker.sock",
		ADBHost: "127.0.0.1", CPUCores: 4, MemoryMB: 1024}); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, env); len(got) != 2 {
		t.Fatalf("nodes after registering local again = %v", got)
	}
}

func TestAddNodeChecksTheEngineAndRefusesATakenNameOrEngine(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	reg := device.NodeRegistration{Name: "node2", DockerHost: "tcp://10.0.0.2:2376", ADBHost: "10.0.0.2", CPUCores: 8, MemoryMB: 8192}
	refuse := func(context.Context, string, string) error {
		return apierr.New(apierr.Unprocessable, "engine_unreachable: no answer")
	}
	_, err := env.Service.AddNode(bg, reg, refuse)
	wantCode(t, err, apierr.Unprocessable)
	if got := spread(t, env); len(got) != 1 {
		t.Fatalf("a refused node was registered: %v", got)
	}
	bad := reg
	bad.DockerHost = "http://10.0.0.2"
	_, err = env.Service.AddNode(bg, bad, nil)
	wantCode(t, err, apierr.Invalid)
	n, err := env.Service.AddNode(bg, reg, func(context.Context, string, string) error { return nil })
	if err != nil || n.Name != "node2" || n.Health != device.NodeUp || n.Status != device.NodeActive || n.Labels == nil {
		t.Fatalf("add: %+v %v", n, err)
	}
	_, err = env.Service.AddNode(bg, reg, nil)
	wantCode(t, err, apierr.Conflict)
	same := reg
	same.Name = "node3"
	_, err = env.Service.AddNode(bg, same, nil)
	wantCode(t, err, apierr.Conflict)
}
