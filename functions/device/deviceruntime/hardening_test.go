package deviceruntime_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"golang.org/x/sys/unix"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
)

func TestPhonesRunUnprivilegedWithLimitsOnANetworkWherePhonesCannotReachEachOther(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *deviceruntime.Config) { c.PidsLimit = 64 })
	a, other := b.deviceID("phone-a"), b.deviceID("phone-b")
	for _, id := range []string{a, other} {
		b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(id)))
	}
	for _, id := range []string{a, other} {
		b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
	}
	ci := b.inspect(a)
	hc := ci.HostConfig
	switch {
	case hc.Privileged:
		t.Fatal("the stand-in phone runs privileged")
	case hc.PidsLimit == nil || *hc.PidsLimit != 64:
		t.Fatalf("PidsLimit %v, want 64", hc.PidsLimit)
	case hc.Memory != 32<<20 || hc.MemorySwap != hc.Memory:
		t.Fatalf("Memory %d MemorySwap %d, want both 32 MiB (no swap)", hc.Memory, hc.MemorySwap)
	case !slices.Equal(hc.CapDrop, []string{"ALL"}) || len(hc.CapAdd) != 0:
		t.Fatalf("CapDrop %v CapAdd %v, want every capability dropped and none added", hc.CapDrop, hc.CapAdd)
	case !slices.Contains(hc.SecurityOpt, "no-new-privileges:true"):
		t.Fatalf("SecurityOpt %v lacks no-new-privileges", hc.SecurityOpt)
	case string(hc.NetworkMode) != "cloudphone-phones-"+b.run:
		t.Fatalf("network %q, want the instance's cloudphone-phones-%s", hc.NetworkMode, b.run)
	}

	// What the kernel holds for the phone's process, not only what the
	// engine was asked for.
	status := procStatus(t, ci.State.Pid)
	for key, want := range map[string]string{"Uid": "2000", "Gid": "2000", "CapEff": "0000000000000000",
		"CapPrm": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1"} {
		if got := strings.Fields(status[key]); len(got) == 0 || got[0] != want {
			t.Errorf("the phone's process has %s %q, want %s", key, status[key], want)
		}
	}
	if max := pidsMax(t, ci.State.Pid); max != "64" {
		t.Errorf("the phone's pids cgroup allows %q processes, want 64", max)
	}

	nw, err := b.docker.NetworkInspect(context.Background(), string(hc.NetworkMode), network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nw.Options["com.docker.network.bridge.enable_icc"] != "false" {
		t.Fatalf("network options %v, want enable_icc=false", nw.Options)
	}

	// The other phone answers ADB from the host (its port is published) and
	// on its network address from the host, but not from the first phone.
	target := net.JoinHostPort(b.inspect(other).NetworkSettings.Networks[string(hc.NetworkMode)].IPAddress, "5555")
	if err := deviceruntime.ADBHandshake(context.Background(), target, 2*time.Second); err != nil {
		t.Fatalf("the host cannot reach the phone at %s: %v", target, err)
	}
	if err := handshakeFrom(ci.State.Pid, "127.0.0.1:5555"); err != nil {
		t.Fatalf("a phone cannot reach its own ADB port from inside (the check itself is broken): %v", err)
	}
	if err := handshakeFrom(ci.State.Pid, target); err == nil {
		t.Fatalf("phone %s reached phone %s at %s", a, other, target)
	}

	// A container outside the phones' network (the engine's default
	// bridge) cannot reach a phone either.
	outsider := b.runOutsider()
	if err := handshakeFrom(outsider, target); err == nil {
		t.Fatalf("a container on the default bridge reached phone %s at %s", other, target)
	}
}

func TestAPhonesNetworkThatAllowsTrafficBetweenContainersIsRefused(t *testing.T) {
	t.Parallel()
	var name string
	b := setup(t, func(c *deviceruntime.Config) { c.Network = "cloudphone-open-" + c.Instance; name = c.Network })
	if _, err := b.docker.NetworkCreate(context.Background(), name, network.CreateOptions{Driver: "bridge",
		Labels: map[string]string{testLabel: b.run}}); err != nil {
		t.Fatal(err)
	}
	id := b.deviceID("open-net")
	b.send(b.rt, command(t, deviceevents.EventCreateRequested, b.createCommand(id)))
	_, failed := b.waitReports(id, deviceevents.EventRuntimeFailed, 1, 30*time.Second)
	if !strings.Contains(failed.Reason, "inter-container traffic disabled") || len(b.containers(id)) != 0 {
		t.Fatalf("failed %+v; %d containers", failed, len(b.containers(id)))
	}
}

// runOutsider runs the stand-in on the engine's default bridge (not a
// phone) and returns its process id.
func (b *bundle) runOutsider() int {
	b.t.Helper()
	ctx := context.Background()
	resp, err := b.docker.ContainerCreate(ctx, &container.Config{Image: standinimage.Tag,
		Labels: map[string]string{testLabel: b.run}}, &container.HostConfig{}, nil, nil, "")
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		b.t.Fatal(err)
	}
	ci, err := b.docker.ContainerInspect(ctx, resp.ID)
	if err != nil {
		b.t.Fatal(err)
	}
	return ci.State.Pid
}

// procStatus reads /proc/<pid>/status as key → value.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the phone's process status: %v", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// pidsMax reads the pids limit of pid's cgroup (v1 or v2).
func pidsMax(t *testing.T, pid int) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case slices.Contains(strings.Split(parts[1], ","), "pids"):
			file = filepath.Join("/sys/fs/cgroup/pids", parts[2], "pids.max")
		case parts[0] == "0" && parts[1] == "":
			file = filepath.Join("/sys/fs/cgroup", parts[2], "pids.max")
		default:
			continue
		}
		if b, err := os.ReadFile(file); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no pids cgroup for process %d in %s", pid, raw)
	return ""
}

// handshakeFrom tries the ADB handshake with addr from inside the network
// namespace of process pid, as a program in that container would.
func handshakeFrom(pid int, addr string) error {
	errc := make(chan error, 1)
	go func() {
		// The thread enters the container's namespace and is never handed
		// back: it ends with this goroutine.
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open the network namespace of %d: %w", pid, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter the network namespace of %d: %w", pid, err)
			return
		}
		errc <- deviceruntime.ADBHandshake(context.Background(), addr, 2*time.Second)
	}()
	return <-errc
}
