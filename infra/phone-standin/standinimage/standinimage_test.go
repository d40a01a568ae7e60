package standinimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/adb/adbtest"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
)

// standin runs the stand-in image with its ADB port published on a random
// host port and returns the container and that address.
func standin(t *testing.T) (*client.Client, string, string) {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := standinimage.Ensure(ctx, c); err != nil {
		t.Fatalf("this test needs a Docker engine and the stand-in image: %v", err)
	}
	port := nat.Port("5555/tcp")
	resp, err := c.ContainerCreate(ctx, &container.Config{Image: standinimage.Tag, ExposedPorts: nat.PortSet{port: {}},
		Env:    []string{"STANDIN_NAME=image-phone"},
		Labels: map[string]string{"cloudphone.test": "standinimage"}},
		&container.HostConfig{PortBindings: nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: "0"}}},
			Resources: container.Resources{Memory: 16 << 20}}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})
	if err := c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	ci, err := c.ContainerInspect(ctx, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := ci.NetworkSettings.Ports[port]
	if len(b) == 0 {
		t.Fatal("no published port")
	}
	return c, resp.ID, net.JoinHostPort("127.0.0.1", b[0].HostPort)
}

func exec(t *testing.T, c *client.Client, id string, cmd ...string) (string, int) {
	t.Helper()
	ctx := context.Background()
	ex, err := c.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	att, err := c.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		t.Fatal(err)
	}
	st, err := c.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), st.ExitCode
}

func copyIn(t *testing.T, c *client.Client, id, dir, name string, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data))})
	_, _ = tw.Write(data)
	_ = tw.Close()
	if err := c.CopyToContainer(context.Background(), id, dir, &buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestStandInImageIsADeviceForRealADBAndSharesPackagesWithDockerExecPm(t *testing.T) {
	t.Parallel()
	signed := adbtest.BuildAPK(t, "org.cloudphone.image", true)
	copied := adbtest.BuildAPK(t, "org.cloudphone.copied", true)
	server := adbtest.NewServer(t)
	c, id, addr := standin(t)
	if err := waitHandshake(addr); err != nil {
		t.Fatalf("ADB handshake: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server.Connect(ctx, addr)
	if out, err := server.Run(ctx, "-s", addr, "shell", "getprop", "ro.product.model"); err != nil || out != "image-phone\n" {
		t.Fatalf("getprop ro.product.model: %q %v", out, err)
	}
	if out, err := server.Run(ctx, "-s", addr, "install", signed.Path); err != nil || !strings.Contains(out, "Success") {
		t.Fatalf("adb install: %q %v", out, err)
	}

	// The package manager for `docker exec` sees the same packages, and
	// what it installs is seen over ADB.
	b, err := os.ReadFile(copied.Path)
	if err != nil {
		t.Fatal(err)
	}
	copyIn(t, c, id, "/data/local/tmp", "copied.apk", b)
	copyIn(t, c, id, "/data/local/tmp", "notazip.apk", []byte("plain text"))
	if out, code := exec(t, c, id, "pm", "install", "/data/local/tmp/copied.apk"); code != 0 || strings.TrimSpace(out) != "Success" {
		t.Fatalf("docker exec pm install: %d %q", code, out)
	}
	if out, code := exec(t, c, id, "pm", "install", "/data/local/tmp/notazip.apk"); code == 0 || !strings.Contains(out, "INSTALL_PARSE_FAILED_NOT_APK") {
		t.Fatalf("docker exec pm install of a non-APK: %d %q", code, out)
	}
	cl, err := adb.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := cl.Shell(ctx, "pm list packages")
	if err != nil || res.ExitCode != 0 || string(res.Stdout) != "package:org.cloudphone.copied\npackage:org.cloudphone.image\n" {
		t.Fatalf("pm list packages over ADB: %q %v", res.Stdout, err)
	}
	if out, code := exec(t, c, id, "pm", "list", "packages"); code != 0 || out != string(res.Stdout) {
		t.Fatalf("docker exec pm list packages: %d %q", code, out)
	}
}

func waitHandshake(addr string) error {
	var err error
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = adb.Handshake(ctx, addr)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}
