package adb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/adb"
)

// rootFS is the sync: storage of the test device: real files under an
// os.Root.
type rootFS struct{ r *os.Root }

func rel(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (f rootFS) Stat(p string) (fs.FileInfo, error) { return f.r.Stat(rel(p)) }
func (f rootFS) ReadDir(p string) ([]fs.FileInfo, error) {
	d, err := f.r.Open(rel(p))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdir(-1)
}
func (f rootFS) Open(p string) (io.ReadCloser, error) { return f.r.Open(rel(p)) }
func (f rootFS) Create(p string, mode fs.FileMode) (adb.FileWriter, error) {
	if err := f.r.MkdirAll(path.Dir(rel(p)), 0o755); err != nil {
		return nil, err
	}
	tmp := rel(p) + ".part"
	w, err := f.r.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return nil, err
	}
	return &rootFile{f: f, w: w, tmp: tmp, dst: rel(p)}, nil
}

type rootFile struct {
	f        rootFS
	w        *os.File
	tmp, dst string
}

func (r *rootFile) Write(b []byte) (int, error) { return r.w.Write(b) }
func (r *rootFile) Commit(time.Time) error {
	err := r.w.Close()
	if err == nil {
		err = r.f.r.Rename(r.tmp, r.dst)
	}
	if err != nil {
		_ = r.f.r.Remove(r.tmp)
	}
	return err
}
func (r *rootFile) Abort() { _ = r.w.Close(); _ = r.f.r.Remove(r.tmp) }

// testDevice serves: echo: (copies input to output), shell (v1 and v2:
// "exit N" exits with N, anything else prints itself), sync:.
func testDevice(t *testing.T, features ...string) (string, rootFS) {
	t.Helper()
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	fsys := rootFS{root}
	d := &adb.Device{
		Props:    map[string]string{"ro.product.model": "test-device"},
		Features: features,
		Handler: adb.HandlerFunc(func(service string) func(context.Context, *adb.Stream) {
			switch {
			case service == "echo:":
				return func(_ context.Context, s *adb.Stream) { _, _ = io.Copy(s, s) }
			case service == "sync:":
				return func(_ context.Context, s *adb.Stream) { _ = adb.ServeSync(s, fsys) }
			}
			svc, ok := adb.ParseShellService(service)
			if !ok {
				return nil
			}
			return func(_ context.Context, s *adb.Stream) {
				code := 0
				out := svc.Command + "\n"
				if n, ok := strings.CutPrefix(svc.Command, "exit "); ok {
					code, _ = strconv.Atoi(n)
					out = ""
				}
				if !svc.V2 {
					_, _ = io.WriteString(s, out)
					return
				}
				sc := adb.NewShellConn(s)
				_ = sc.WritePacket(adb.ShellStdout, []byte(out))
				_ = sc.WritePacket(adb.ShellStderr, []byte("to stderr\n"))
				_ = sc.WritePacket(adb.ShellExit, []byte{byte(code)})
			}
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), fsys
}

func dial(t *testing.T, addr string) *adb.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := adb.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestStreamsCarryMegabytesBothWaysAtOnceOnOneConnection(t *testing.T) {
	t.Parallel()
	addr, _ := testDevice(t)
	c := dial(t, addr)
	ctx := context.Background()
	const streams, size = 8, 3<<20 + 5
	errs := make(chan error, streams)
	for i := range streams {
		go func() {
			s, err := c.Open(ctx, "echo:")
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			data := make([]byte, size)
			_, _ = rand.Read(data)
			go func() {
				// Odd-sized writes, some far over the 1 MiB block.
				for p := data; len(p) > 0; {
					n := min(len(p), 1+(i+1)*300_007)
					if _, err := s.Write(p[:n]); err != nil {
						return
					}
					p = p[n:]
				}
			}()
			got := make([]byte, size)
			if _, err := io.ReadFull(s, got); err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("stream %d: the echo differs", i)
				return
			}
			errs <- nil
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestAServiceTheDeviceDoesNotOfferIsRefused(t *testing.T) {
	t.Parallel()
	addr, _ := testDevice(t)
	c := dial(t, addr)
	if _, err := c.Open(context.Background(), "framebuffer:"); err == nil || !strings.Contains(err.Error(), `"framebuffer:": the device refused`) {
		t.Fatalf("Open = %v", err)
	}
	// The connection is still good.
	if _, err := c.Open(context.Background(), "echo:"); err != nil {
		t.Fatal(err)
	}
}

func TestShellV2GivesExitCodeAndStderrAndV1Cannot(t *testing.T) {
	t.Parallel()
	v2addr, _ := testDevice(t, "shell_v2")
	v1addr, _ := testDevice(t)
	ctx := context.Background()
	res, err := dial(t, v2addr).Shell(ctx, "exit 7")
	if err != nil || res.ExitCode != 7 || string(res.Stderr) != "to stderr\n" {
		t.Fatalf("v2: %+v %v", res, err)
	}
	res, err = dial(t, v1addr).Shell(ctx, "hello")
	if err != nil || res.ExitCode != -1 || string(res.Stdout) != "hello\n" {
		t.Fatalf("v1: %+v %v", res, err)
	}
	res, err = dial(t, v2addr).ShellLimit(ctx, "0123456789", 4)
	if err != nil || string(res.Stdout) != "0123" || !res.Truncated {
		t.Fatalf("limited: %+v %v", res, err)
	}
}

// rawHeader builds a message header as a host would.
func rawMessage(cmd string, arg0, arg1 uint32, data []byte, sum uint32) []byte {
	b := make([]byte, 24+len(data))
	c := binary.LittleEndian.Uint32([]byte(cmd))
	binary.LittleEndian.PutUint32(b[0:], c)
	binary.LittleEndian.PutUint32(b[4:], arg0)
	binary.LittleEndian.PutUint32(b[8:], arg1)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(data)))
	binary.LittleEndian.PutUint32(b[16:], sum)
	binary.LittleEndian.PutUint32(b[20:], c^0xffffffff)
	copy(b[24:], data)
	return b
}

func byteSum(b []byte) uint32 {
	var s uint32
	for _, x := range b {
		s += uint32(x)
	}
	return s
}

func TestAHostOfTheFirstVersionGetsChecksumsAndABadOneEndsTheConnection(t *testing.T) {
	t.Parallel()
	addr, _ := testDevice(t)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	banner := []byte("host::\x00")
	if _, err := nc.Write(rawMessage("CNXN", adb.VersionMin, 4096, banner, byteSum(banner))); err != nil {
		t.Fatal(err)
	}
	var h [24]byte
	if _, err := io.ReadFull(nc, h[:]); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, binary.LittleEndian.Uint32(h[12:]))
	if _, err := io.ReadFull(nc, data); err != nil {
		t.Fatal(err)
	}
	if string(h[:4]) != "CNXN" || binary.LittleEndian.Uint32(h[16:]) != byteSum(data) || !strings.HasPrefix(string(data), "device::") {
		t.Fatalf("CNXN answer %q %q without its checksum", h[:4], data)
	}
	open := []byte("echo:\x00")
	if _, err := nc.Write(rawMessage("OPEN", 1, 0, open, byteSum(open)+1)); err != nil {
		t.Fatal(err)
	}
	if n, err := nc.Read(h[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("after a bad checksum the device answered %d bytes (%q), %v; want the connection closed", n, h[:n], err)
	}
}

func TestSomethingThatIsNotADBIsHungUpOn(t *testing.T) {
	t.Parallel()
	addr, _ := testDevice(t)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("want a clean close, got %v", err)
	}
}

func TestSyncPushStatListPullAndAFailedPushLeavesNothing(t *testing.T) {
	t.Parallel()
	addr, fsys := testDevice(t)
	c := dial(t, addr)
	ctx := context.Background()
	data := bytes.Repeat([]byte("cloudphone "), 20000)
	if err := c.Push(ctx, bytes.NewReader(data), int64(len(data)), "/a/b/file.txt", 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := c.Stat(ctx, "/a/b/file.txt")
	if err != nil || fi.Size != int64(len(data)) || fi.Mode != 0o600 {
		t.Fatalf("Stat = %+v %v", fi, err)
	}
	if _, err := c.Stat(ctx, "/a/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of nothing = %v", err)
	}
	list, err := c.List(ctx, "/a/b")
	if err != nil || len(list) != 1 || list[0].Name != "file.txt" {
		t.Fatalf("List = %+v %v", list, err)
	}
	var back bytes.Buffer
	if _, err := c.Pull(ctx, "/a/b/file.txt", &back); err != nil || !bytes.Equal(back.Bytes(), data) {
		t.Fatalf("Pull: %v", err)
	}
	// More bytes than announced: refused before DONE, nothing stored.
	if err := c.Push(ctx, bytes.NewReader(data), 10, "/a/too-long.txt", 0o600); err == nil {
		t.Fatal("a reader longer than the size was pushed")
	}
	// A directory in the way: the device answers FAIL with its reason.
	if err := c.Push(ctx, strings.NewReader("x"), 1, "/a/b", 0o600); err == nil || !strings.Contains(err.Error(), "the device refused") {
		t.Fatalf("push onto a directory = %v", err)
	}
	// The device drops an abandoned upload when it sees the stream close,
	// which may come just after the client returned.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		entries, err := fsys.ReadDir("/a")
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, e := range entries {
			if e.Name() != "b" {
				left = append(left, e.Name())
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failed pushes left %v", left)
		}
	}
}

func TestHandshakeNamesTheDevice(t *testing.T) {
	t.Parallel()
	addr, _ := testDevice(t, "shell_v2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	banner, err := adb.Handshake(ctx, addr)
	if err != nil || banner != "device::ro.product.model=test-device;features=shell_v2" {
		t.Fatalf("Handshake = %q, %v", banner, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		// Accepts and says nothing, as Docker's proxy does for a
		// container that does not listen yet.
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			<-ctx.Done()
		}
	}()
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := adb.Handshake(short, ln.Addr().String()); err == nil {
		t.Fatal("a silent listener passed the handshake")
	}
}

func TestAuthenticationWithATrustedKeyAnUnknownOneAndNone(t *testing.T) {
	t.Parallel()
	trusted, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The key survives adb's text form.
	text, err := adb.EncodePublicKey(&trusted.PublicKey, "ci@cloudphone")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := adb.ParsePublicKey(text)
	if err != nil || parsed.N.Cmp(trusted.N) != 0 || parsed.E != trusted.E || !strings.HasSuffix(text, " ci@cloudphone") {
		t.Fatalf("ParsePublicKey(EncodePublicKey) = %v, %v", parsed, err)
	}

	addr := secureDevice(t, &trusted.PublicKey)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := adb.Dial(ctx, addr, adb.WithKey(trusted, "ci@cloudphone"))
	if err != nil {
		t.Fatalf("with the trusted key: %v", err)
	}
	if _, err := c.Open(ctx, "echo:"); err != nil {
		t.Fatal(err)
	}
	c.Close()

	if _, err := adb.Dial(ctx, addr); !errors.Is(err, adb.ErrAuthRequired) {
		t.Fatalf("without a key: %v, want ErrAuthRequired", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, err := adb.Dial(short, addr, adb.WithKey(stranger, "x@y")); !errors.Is(err, adb.ErrAuthRequired) {
		t.Fatalf("with an unknown key: %v, want ErrAuthRequired", err)
	}
	// The health check counts a device that asks for a key as up.
	if banner, err := adb.Handshake(ctx, addr); !errors.Is(err, adb.ErrAuthRequired) || banner != "" {
		t.Fatalf("Handshake = %q, %v", banner, err)
	}
}

func secureDevice(t *testing.T, keys ...*rsa.PublicKey) string {
	t.Helper()
	d := &adb.Device{
		Keys: func() []*rsa.PublicKey { return keys },
		Handler: adb.HandlerFunc(func(service string) func(context.Context, *adb.Stream) {
			if service != "echo:" {
				return nil
			}
			return func(_ context.Context, s *adb.Stream) { _, _ = io.Copy(s, s) }
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

func TestAHostThatIgnoresFlowControlIsDropped(t *testing.T) {
	t.Parallel()
	// A device whose service never reads: only flow control bounds what
	// it holds.
	d := &adb.Device{Handler: adb.HandlerFunc(func(string) func(context.Context, *adb.Stream) {
		return func(ctx context.Context, _ *adb.Stream) { <-ctx.Done() }
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	banner := []byte("host::\x00")
	_, _ = nc.Write(rawMessage("CNXN", adb.VersionSkipChecksum, 4096, banner, 0))
	_, _ = nc.Write(rawMessage("OPEN", 1, 0, []byte("sink:\x00"), 0))
	go func() {
		chunk := bytes.Repeat([]byte("x"), 4096)
		for range 64 {
			if _, err := nc.Write(rawMessage("WRTE", 1, 1, chunk, 0)); err != nil {
				return
			}
		}
	}()
	// The device hangs up: EOF, or a reset as it drops unread data.
	if _, err := io.Copy(io.Discard, nc); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the device kept the connection: %v", err)
	}
}

func TestClientDoneClosesWhenTheDeviceGoesAway(t *testing.T) {
	t.Parallel()
	d := &adb.Device{Handler: adb.HandlerFunc(func(string) func(context.Context, *adb.Stream) { return nil })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	c := dial(t, ln.Addr().String())
	select {
	case <-c.Done():
		t.Fatal("Done before the device went away")
	default:
	}
	cancel()
	<-done
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done stayed open after the device went away")
	}
	if _, err := c.Open(context.Background(), "echo:"); err == nil {
		t.Fatal("Open succeeded on a connection that ended")
	}
}
