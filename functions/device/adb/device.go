package adb

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
)

// Handler serves the streams a host opens on a Device.
type Handler interface {
	// Route returns the function serving service (the name the host sent
	// in OPEN, such as "shell,v2,raw:ls" or "sync:"), or nil when the
	// device does not offer it; the host then gets CLSE at once. The
	// function owns the stream until it returns, after which the stream is
	// closed; ctx ends when the connection does.
	Route(service string) func(ctx context.Context, s *Stream)
}

// HandlerFunc adapts a routing function to Handler.
type HandlerFunc func(service string) func(ctx context.Context, s *Stream)

// Route calls f.
func (f HandlerFunc) Route(service string) func(ctx context.Context, s *Stream) { return f(service) }

// Device is the device side of the transport: it answers a host's CNXN
// with its own banner and hands every stream the host opens to Handler.
// Without Keys it asks for no authentication (a device with
// ro.adb.secure=0). The fields are read-only once Serve or ServeConn runs;
// a Device is safe for concurrent use by many connections.
type Device struct {
	// Props are the banner's properties, such as ro.product.name,
	// ro.product.model and ro.product.device, shown by `adb devices -l`.
	Props map[string]string
	// Features are the banner's features, such as "shell_v2" and "cmd":
	// what the host may rely on. Offer only what Handler serves.
	Features []string
	// Handler serves the streams; required.
	Handler Handler
	// Log receives one line per connection; nil logs nothing.
	Log *slog.Logger
	// HandshakeTimeout bounds the wait for the host's CNXN (default 10 s).
	HandshakeTimeout time.Duration
	// Keys, when set, makes the device require authentication as adbd
	// with ro.adb.secure=1 does: it sends AUTH with a random token and
	// accepts the host once it signs the token with, or offers, one of the
	// keys Keys returns (called per connection, like reading adb_keys). A
	// host with another key stays connected and unauthorized, as adb
	// shows it.
	Keys func() []*rsa.PublicKey
}

// Banner is the data the device sends in CNXN:
// "device::key=value;…;features=a,b".
func (d *Device) Banner() string {
	var b strings.Builder
	b.WriteString("device::")
	keys := make([]string, 0, len(d.Props))
	for k := range d.Props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s;", k, d.Props[k])
	}
	if len(d.Features) > 0 {
		b.WriteString("features=" + strings.Join(d.Features, ","))
	}
	return b.String()
}

// Serve accepts connections on ln and serves each in its own goroutine
// until ctx ends or ln fails; it closes ln and waits for the connections
// to end before it returns.
func (d *Device) Serve(ctx context.Context, ln net.Listener) error {
	if d.Handler == nil {
		return errors.New("adb: Device without a Handler")
	}
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("adb: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.ServeConn(ctx, nc)
			if d.Log != nil {
				d.Log.Debug("adb connection ended", "remote", nc.RemoteAddr().String(), "error", err)
			}
		}()
	}
}

// ServeConn runs the device side on one connection: handshake, then streams,
// until the host goes away or ctx ends. It closes nc before it returns.
func (d *Device) ServeConn(ctx context.Context, nc net.Conn) error {
	defer nc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()

	timeout := d.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(nc, 64<<10)
	var cnxn message
	for {
		m, err := readMessage(br, maxDataLimit, false)
		if err != nil {
			return fmt.Errorf("adb: handshake: %w", err)
		}
		if m.cmd == cmdCNXN {
			cnxn = m
			break
		}
		// Anything before CNXN (a stray AUTH, STLS) is ignored.
	}
	version := min(cnxn.arg0, VersionSkipChecksum)
	if version < VersionMin {
		version = VersionMin
	}
	maxData := min(cnxn.arg1, MaxData)
	if maxData < 4096 {
		return fmt.Errorf("adb: handshake: host offers a maximum data size of %d bytes", cnxn.arg1)
	}
	t := newTransport(nc, br, version, maxData)
	_ = nc.SetReadDeadline(time.Time{})
	if d.Keys != nil {
		if err := d.authenticate(t); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	t.onOpen = func(remote uint32, service string) {
		serve := d.Handler.Route(service)
		if serve == nil {
			_ = t.send(message{cmd: cmdCLSE, arg0: 0, arg1: remote})
			return
		}
		s, err := t.newStream(remote, service)
		if err != nil {
			_ = t.send(message{cmd: cmdCLSE, arg0: 0, arg1: remote})
			return
		}
		s.okay(remote)
		if err := t.send(message{cmd: cmdOKAY, arg0: s.local, arg1: remote}); err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			serve(ctx, s)
		}()
	}
	// Our CNXN carries our own version and size; each side uses the
	// smaller values.
	if err := t.send(message{cmd: cmdCNXN, arg0: VersionSkipChecksum, arg1: MaxData, data: []byte(d.Banner())}); err != nil {
		return err
	}
	err := t.run()
	cancel()
	wg.Wait()
	return err
}

// authenticate runs the AUTH exchange until the host proves a trusted key;
// it returns an error only when the connection ends.
func (d *Device) authenticate(t *transport) error {
	token := make([]byte, authTokenSize)
	newToken := func() error {
		_, _ = rand.Read(token)
		return t.send(message{cmd: cmdAUTH, arg0: authToken, data: token})
	}
	if err := newToken(); err != nil {
		return err
	}
	trusted := d.Keys()
	for {
		m, err := readMessage(t.br, t.maxData, t.checksum)
		if err != nil {
			return fmt.Errorf("adb: authentication: %w", err)
		}
		if m.cmd != cmdAUTH {
			continue
		}
		switch m.arg0 {
		case authSignature:
			for _, k := range trusted {
				if verifyToken(k, token, m.data) {
					return nil
				}
			}
			if err := newToken(); err != nil {
				return err
			}
		case authRSAPublicKey:
			pub, err := ParsePublicKey(string(trimNUL(m.data)))
			if err == nil {
				for _, k := range trusted {
					if k.N.Cmp(pub.N) == 0 && k.E == pub.E {
						return nil
					}
				}
			}
			if d.Log != nil {
				d.Log.Info("adb host offered an unknown key; it stays unauthorized", "remote", t.nc.RemoteAddr().String())
			}
		}
	}
}
