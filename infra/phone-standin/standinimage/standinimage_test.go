package standinimage_test

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
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

func apk(t *testing.T, manifest string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("AndroidManifest.xml")
	fmt.Fprint(w, manifest)
	w, _ = zw.Create("classes.dex")
	fmt.Fprint(w, "dex\n035")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
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

func TestStandInAnswersADBAndTheTextProtocolAndInstallsCopiedAPKs(t *testing.T) {
	t.Parallel()
	c, id, addr := standin(t)
	if err := waitHandshake(addr); err != nil {
		t.Fatalf("ADB handshake: %v", err)
	}

	copyIn(t, c, id, "/data/local/tmp", "demo.apk", apk(t, `<manifest package="com.example.demo"/>`))
	copyIn(t, c, id, "/data/local/tmp", "org.named.byfile.apk", apk(t, "\x03\x00\x08\x00 binary manifest"))
	copyIn(t, c, id, "/data/local/tmp", "notazip.apk", []byte("plain text"))
	if out, code := exec(t, c, id, "pm", "install", "/data/local/tmp/demo.apk"); code != 0 || strings.TrimSpace(out) != "Success" {
		t.Fatalf("pm install: %d %q", code, out)
	}
	if out, code := exec(t, c, id, "pm", "install", "/data/local/tmp/notazip.apk"); code == 0 || !strings.Contains(out, "INSTALL_PARSE_FAILED_NOT_APK") {
		t.Fatalf("pm install of a non-APK: %d %q", code, out)
	}

	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	ask := func(line string) string {
		fmt.Fprintln(conn, line)
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return strings.TrimSpace(got)
	}
	for _, c := range []struct{ ask, want string }{
		{"host:version", "OKAY 0029"},
		{"getprop sys.boot_completed", "OKAY 1"},
		{"install /data/local/tmp/org.named.byfile.apk", "OKAY Success org.named.byfile"},
		{"install /etc/passwd", "FAIL INSTALL_FAILED_INVALID_URI: /etc/passwd is not under /data/local/tmp"},
		{"pm list packages", "OKAY package:com.example.demo package:org.named.byfile"},
		{"uninstall org.named.byfile", "OKAY Success"},
		{"reboot", "FAIL unknown request: reboot"},
	} {
		if got := ask(c.ask); got != c.want {
			t.Fatalf("%s → %q, want %q", c.ask, got, c.want)
		}
	}
	out, code := exec(t, c, id, "pm", "list", "packages")
	if code != 0 || out != "package:com.example.demo\n" {
		t.Fatalf("pm list packages: %d %q", code, out)
	}
}

func waitHandshake(addr string) error {
	var err error
	for range 50 {
		if err = deviceruntime.ADBHandshake(context.Background(), addr, time.Second); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}
