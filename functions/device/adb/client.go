package adb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// hostBanner is what the Client sends in CNXN: the features it can use.
const hostBanner = "host::features=shell_v2,cmd,fixed_push_mkdir"

// ErrAuthRequired is returned by Dial and NewClient when the device asks
// for an RSA key (AUTH) and the Client has none (see WithKey), or the
// device accepted neither its signature nor its public key. Devices with
// ro.adb.secure=0 (redroid's default, the phone stand-in's) ask for none.
var ErrAuthRequired = errors.New("adb: the device requires authentication")

// Option configures Dial and NewClient.
type Option func(*options)

type options struct {
	key     *rsa.PrivateKey
	keyName string
}

// WithKey makes the Client answer a device's AUTH as adb does: it signs the
// device's token with key (a 2048-bit RSA key, as in ~/.android/adbkey);
// when the device does not know the key, it offers the public key under
// name (such as "cloudphone@host") and waits, within the handshake's
// context, for the device to accept it.
func WithKey(key *rsa.PrivateKey, name string) Option {
	return func(o *options) { o.key, o.keyName = key, name }
}

// Client is the host side of one ADB connection to a device, dialled
// straight to the device's ADB endpoint (no adb server in between). Any
// number of operations may run at once, each on its own stream; a Client
// is safe for concurrent use. Close it when done.
type Client struct {
	t          *transport
	banner     string
	props      map[string]string
	features   []string
	runErr     chan error // the reader's end
	readerOnce sync.Once
}

// Dial connects to the device's ADB endpoint at addr (host:port) and
// performs the handshake; ctx bounds the dial and the handshake only.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("adb: dial %s: %w", addr, err)
	}
	c, err := NewClient(ctx, nc, opts...)
	if err != nil {
		return nil, fmt.Errorf("adb: connect %s: %w", addr, err)
	}
	return c, nil
}

// NewClient performs the handshake on an established connection nc (a TCP
// connection, or a tunnel to one) and returns a Client that owns nc.
func NewClient(ctx context.Context, nc net.Conn, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c, offered, err := handshake(nc, o)
	if !stop() || err != nil {
		_ = nc.Close()
		if ctx.Err() != nil {
			if offered {
				return nil, fmt.Errorf("%w: the device did not accept the public key: %w", ErrAuthRequired, ctx.Err())
			}
			return nil, fmt.Errorf("adb: handshake: %w", ctx.Err())
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	go func() { c.runErr <- c.t.run() }()
	return c, nil
}

// handshake sends CNXN and answers AUTH until the device's CNXN arrives;
// offered reports that the public key was offered (the device may be
// waiting for a person to accept it).
func handshake(nc net.Conn, o options) (c *Client, offered bool, err error) {
	t := newTransport(nc, bufio.NewReaderSize(nc, 64<<10), VersionSkipChecksum, MaxData)
	t.checksum = true // until the device's version is known
	if err := t.send(message{cmd: cmdCNXN, arg0: VersionSkipChecksum, arg1: MaxData, data: []byte(hostBanner + "\x00")}); err != nil {
		return nil, false, fmt.Errorf("adb: handshake: %w", err)
	}
	signed := false
	for {
		m, err := readMessage(t.br, maxDataLimit, false)
		if err != nil {
			return nil, offered, fmt.Errorf("adb: handshake: %w", err)
		}
		switch m.cmd {
		case cmdAUTH:
			if m.arg0 != authToken {
				continue
			}
			switch {
			case o.key == nil:
				return nil, false, ErrAuthRequired
			case !signed:
				sig, err := signToken(o.key, m.data)
				if err != nil {
					return nil, false, err
				}
				signed = true
				if err := t.send(message{cmd: cmdAUTH, arg0: authSignature, data: sig}); err != nil {
					return nil, false, fmt.Errorf("adb: handshake: %w", err)
				}
			case !offered:
				pub, err := EncodePublicKey(&o.key.PublicKey, o.keyName)
				if err != nil {
					return nil, false, err
				}
				offered = true
				if err := t.send(message{cmd: cmdAUTH, arg0: authRSAPublicKey, data: []byte(pub + "\x00")}); err != nil {
					return nil, offered, fmt.Errorf("adb: handshake: %w", err)
				}
			default:
				return nil, offered, fmt.Errorf("%w: the device refused the key", ErrAuthRequired)
			}
		case cmdSTLS:
			return nil, false, errors.New("adb: handshake: the device requires TLS")
		case cmdCNXN:
			t.version = max(min(m.arg0, VersionSkipChecksum), VersionMin)
			t.checksum = t.version < VersionSkipChecksum
			t.maxData = min(m.arg1, MaxData)
			if t.maxData < 256 {
				return nil, offered, fmt.Errorf("adb: handshake: the device offers a maximum data size of %d bytes", m.arg1)
			}
			c := &Client{t: t, runErr: make(chan error, 1)}
			c.parseBanner(string(trimNUL(m.data)))
			return c, offered, nil
		}
	}
}

func (c *Client) parseBanner(b string) {
	c.banner = b
	c.props = map[string]string{}
	_, rest, _ := strings.Cut(b, "::")
	for _, kv := range strings.Split(rest, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if k == "features" {
			c.features = strings.Split(v, ",")
			continue
		}
		c.props[k] = v
	}
}

// Banner is the device's CNXN banner, e.g.
// "device::ro.product.model=…;features=shell_v2,cmd".
func (c *Client) Banner() string { return c.banner }

// Prop returns a property from the device's banner (ro.product.name,
// ro.product.model, ro.product.device); "" when absent. Other properties
// need Shell(ctx, "getprop NAME").
func (c *Client) Prop(name string) string { return c.props[name] }

// HasFeature reports whether the device's banner lists feature (such as
// "shell_v2" or "cmd").
func (c *Client) HasFeature(feature string) bool { return slices.Contains(c.features, feature) }

// Close ends the connection and every stream on it, and waits for its
// reader to stop.
func (c *Client) Close() error {
	c.t.close(ErrClosed)
	<-c.t.done
	c.readerOnce.Do(func() { <-c.runErr })
	return nil
}

// Done is closed when the connection ends: Close, or the device going away.
func (c *Client) Done() <-chan struct{} { return c.t.done }

// Handshake dials addr, performs the ADB handshake and hangs up: the cheap
// check that a device's adbd is up. It returns the device's banner. A TCP
// accept alone proves nothing (Docker's port proxy accepts while the
// container does not listen), so this waits for the device's CNXN.
func Handshake(ctx context.Context, addr string) (string, error) {
	c, err := Dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.banner, nil
}

// Open opens a stream to service (such as "shell,v2,raw:ls", "exec:ls" or
// "sync:") and waits for the device to accept it. A refused service is an
// error naming it. The stream is closed when ctx ends; close it when done.
func (c *Client) Open(ctx context.Context, service string) (*Stream, error) {
	s, err := c.t.newStream(0, service)
	if err != nil {
		return nil, fmt.Errorf("adb: open %q: %w", service, err)
	}
	if err := c.t.send(message{cmd: cmdOPEN, arg0: s.local, data: []byte(service + "\x00")}); err != nil {
		s.Close()
		return nil, fmt.Errorf("adb: open %q: %w", service, err)
	}
	select {
	case <-s.opened:
	case <-s.done:
		select {
		case <-s.opened:
			// Accepted, and already finished: its data is still readable.
			context.AfterFunc(ctx, func() { s.Close() })
			return s, nil
		default:
		}
		if err := c.t.failure(); err != nil {
			return nil, fmt.Errorf("adb: open %q: %w", service, err)
		}
		return nil, fmt.Errorf("adb: open %q: the device refused the service", service)
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("adb: open %q: %w", service, ctx.Err())
	}
	context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// ShellResult is the outcome of a shell command.
type ShellResult struct {
	// Stdout and Stderr hold the command's output, at most
	// Client.MaxOutput bytes each; without shell,v2 both streams arrive
	// mixed in Stdout.
	Stdout, Stderr []byte
	// ExitCode is the command's exit status; -1 when the device does not
	// offer shell,v2 and so cannot report it.
	ExitCode int
	// Truncated reports output beyond the limit that was dropped.
	Truncated bool
}

// DefaultMaxOutput bounds what Shell and Exec keep of a command's output.
const DefaultMaxOutput = 16 << 20

// Shell runs cmd through the device's shell and returns its output and exit
// code. With the shell_v2 feature (which the device announces) stdout,
// stderr and the exit code arrive separately; otherwise the output is mixed
// and the exit code is -1. Shell keeps at most DefaultMaxOutput bytes of
// each stream (ShellResult.Truncated says when more came). Shell returns an
// error only when the command could not be run or the connection failed;
// a command that fails has a non-zero ExitCode. ctx cancels the command.
func (c *Client) Shell(ctx context.Context, cmd string) (ShellResult, error) {
	return c.ShellLimit(ctx, cmd, DefaultMaxOutput)
}

// ShellLimit is Shell keeping at most limit bytes of each output stream.
func (c *Client) ShellLimit(ctx context.Context, cmd string, limit int) (ShellResult, error) {
	res := ShellResult{ExitCode: -1}
	if !c.HasFeature("shell_v2") {
		s, err := c.Open(ctx, "shell:"+cmd)
		if err != nil {
			return res, err
		}
		defer s.Close()
		res.Stdout, res.Truncated, err = readLimited(s, limit)
		if err != nil {
			return res, fmt.Errorf("adb: shell %q: %w", cmd, ctxErr(ctx, err))
		}
		return res, nil
	}
	s, err := c.Open(ctx, "shell,v2,raw:"+cmd)
	if err != nil {
		return res, err
	}
	defer s.Close()
	sc := NewShellConn(s)
	// No input: say so at once. A command that already ended has closed
	// the stream, and then this fails harmlessly; reading tells the rest.
	_ = sc.WritePacket(ShellCloseStdin, nil)
	var out, errOut bytes.Buffer
	for {
		id, data, err := sc.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("adb: shell %q: %w", cmd, ctxErr(ctx, err))
		}
		switch id {
		case ShellStdout:
			res.Truncated = appendLimited(&out, data, limit) || res.Truncated
		case ShellStderr:
			res.Truncated = appendLimited(&errOut, data, limit) || res.Truncated
		case ShellExit:
			if len(data) > 0 {
				res.ExitCode = int(data[0])
			}
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("adb: shell %q: %w", cmd, ctx.Err())
	}
	res.Stdout, res.Stderr = out.Bytes(), errOut.Bytes()
	if res.ExitCode < 0 {
		return res, fmt.Errorf("adb: shell %q: the stream ended without an exit code", cmd)
	}
	return res, nil
}

func appendLimited(b *bytes.Buffer, data []byte, limit int) bool {
	room := limit - b.Len()
	if room <= 0 {
		return len(data) > 0
	}
	if len(data) > room {
		b.Write(data[:room])
		return true
	}
	b.Write(data)
	return false
}

func readLimited(r io.Reader, limit int) ([]byte, bool, error) {
	var b bytes.Buffer
	_, err := io.Copy(&b, io.LimitReader(r, int64(limit)))
	if err != nil {
		return b.Bytes(), false, err
	}
	n, err := io.Copy(io.Discard, r)
	return b.Bytes(), n > 0, err
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Exec runs cmd with the exec: service: no shell framing, no terminal, the
// raw bytes of stdout (binary-safe, as `adb exec-out` gives) and no exit
// code. It returns at most DefaultMaxOutput bytes and an error when more
// came.
func (c *Client) Exec(ctx context.Context, cmd string) ([]byte, error) {
	s, err := c.Open(ctx, "exec:"+cmd)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out, truncated, err := readLimited(s, DefaultMaxOutput)
	if err != nil {
		return out, fmt.Errorf("adb: exec %q: %w", cmd, ctxErr(ctx, err))
	}
	if truncated {
		return out, fmt.Errorf("adb: exec %q: output over %d bytes", cmd, DefaultMaxOutput)
	}
	return out, nil
}

// ExecStream starts cmd with the exec: service and returns the stream: read
// the command's output from it, write its input to it, and close it to end
// the command. The stream also closes when ctx ends.
func (c *Client) ExecStream(ctx context.Context, cmd string) (*Stream, error) {
	return c.Open(ctx, "exec:"+cmd)
}

// pngSignature starts every PNG file.
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// Screencap takes a screenshot and returns it as PNG bytes
// (`screencap -p` on the device, through exec: so the bytes arrive
// unmangled). Output that is not a PNG is an error quoting its start.
func (c *Client) Screencap(ctx context.Context) ([]byte, error) {
	b, err := c.Exec(ctx, "screencap -p")
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, pngSignature) {
		return nil, fmt.Errorf("adb: screencap: the device answered %q, not a PNG", truncate(b, 80))
	}
	return b, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// Logcat starts `logcat` with args (such as "-v", "time" or "-d") and
// returns its output as a stream of text lines, following new lines until
// the caller closes it or ctx ends (with "-d", until the device has printed
// what it holds). Arguments are quoted for the device's shell.
func (c *Client) Logcat(ctx context.Context, args ...string) (io.ReadCloser, error) {
	cmd := "logcat"
	for _, a := range args {
		cmd += " " + Quote(a)
	}
	return c.Open(ctx, "exec:"+cmd)
}

// Quote quotes s as one word for the device's shell (single quotes).
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// InstallError is the package manager's refusal of an APK; Reason is its
// code, such as "INSTALL_PARSE_FAILED_NOT_APK", and Output what it printed.
type InstallError struct {
	Reason string
	Output string
}

func (e *InstallError) Error() string { return "adb: install: " + e.Reason }

// Install installs the APK read from r (size bytes) the way every Android
// version accepts: it pushes it to /data/local/tmp under a fresh name, runs
// `pm install -r` on it and removes it. A refusal by the package manager
// is an *InstallError carrying its reason; other errors are transport or
// file errors.
func (c *Client) Install(ctx context.Context, r io.Reader, size int64) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	remote := "/data/local/tmp/cloudphone-" + hex.EncodeToString(rnd[:]) + ".apk"
	if err := c.Push(ctx, r, size, remote, 0o644); err != nil {
		return fmt.Errorf("adb: install: %w", err)
	}
	return c.InstallPushed(ctx, remote)
}

// InstallPushed installs the APK already pushed to remote on the device
// with `pm install -r` and removes remote whatever pm said (a failure to
// remove it is not the install's failure). A refusal by the package manager
// is an *InstallError carrying its reason; other errors are transport
// errors.
func (c *Client) InstallPushed(ctx context.Context, remote string) error {
	res, err := c.Shell(ctx, "pm install -r "+Quote(remote))
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, _ = c.Shell(cleanup, "rm -f "+Quote(remote))
	if err != nil {
		return fmt.Errorf("adb: install: %w", err)
	}
	out := strings.TrimSpace(string(res.Stdout) + "\n" + string(res.Stderr))
	if res.ExitCode == 0 && strings.Contains(out, "Success") {
		return nil
	}
	return &InstallError{Reason: installReason(out), Output: out}
}

// Packages returns the packages `pm list packages` lists, in its order.
func (c *Client) Packages(ctx context.Context) ([]string, error) {
	res, err := c.ShellLimit(ctx, "pm list packages", 8<<20)
	if err != nil {
		return nil, fmt.Errorf("adb: list packages: %w", err)
	}
	if res.ExitCode > 0 {
		return nil, fmt.Errorf("adb: list packages: exit %d: %s", res.ExitCode, bytes.TrimSpace(res.Stderr))
	}
	var out []string
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "package:"); ok && p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// Uninstall removes package pkg with `pm uninstall`. A refusal by the
// package manager (such as DELETE_FAILED_INTERNAL_ERROR for a package that
// is not installed) is an *InstallError; other errors are transport errors.
func (c *Client) Uninstall(ctx context.Context, pkg string) error {
	res, err := c.Shell(ctx, "pm uninstall "+Quote(pkg))
	if err != nil {
		return fmt.Errorf("adb: uninstall %s: %w", pkg, err)
	}
	out := strings.TrimSpace(string(res.Stdout) + "\n" + string(res.Stderr))
	if res.ExitCode == 0 && strings.Contains(out, "Success") {
		return nil
	}
	return &InstallError{Reason: installReason(out), Output: out}
}

// installReason finds the code in pm's "Failure [CODE: detail]" line.
func installReason(out string) string {
	if _, rest, ok := strings.Cut(out, "Failure ["); ok {
		reason, _, _ := strings.Cut(rest, "]")
		code, _, _ := strings.Cut(reason, ":")
		return strings.TrimSpace(code)
	}
	if out == "" {
		return "INSTALL_FAILED_UNKNOWN"
	}
	return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
}
