package adb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// ErrClosed is returned by Stream and Client operations after the stream or
// the connection closed.
var ErrClosed = errors.New("adb: closed")

const (
	// maxStreams bounds the streams open at once on one connection; an
	// OPEN beyond it is refused.
	maxStreams = 1024
	// maxQueued bounds the WRTE messages a stream holds unread. A peer
	// waits for OKAY after each one, so more means it ignores flow
	// control, and the connection is dropped.
	maxQueued = 4
)

// transport multiplexes streams over one connection after the CNXN
// handshake. Both the host (Client) and the device (Device) side use it.
type transport struct {
	nc       net.Conn
	br       *bufio.Reader
	version  uint32
	maxData  uint32
	checksum bool // senders fill in and receivers verify checksums

	wmu  sync.Mutex // serialises writes of whole messages
	wbuf []byte

	mu      sync.Mutex
	streams map[uint32]*Stream
	nextID  uint32
	err     error // why the transport ended
	done    chan struct{}
	// onOpen handles OPEN from the peer (device side); nil on the host
	// side, where an OPEN is refused.
	onOpen func(remote uint32, service string)
}

func newTransport(nc net.Conn, br *bufio.Reader, version, maxData uint32) *transport {
	return &transport{
		nc: nc, br: br, version: version, maxData: maxData,
		checksum: version < VersionSkipChecksum,
		streams:  map[uint32]*Stream{},
		done:     make(chan struct{}),
	}
}

// send writes one message; safe for concurrent use.
func (t *transport) send(m message) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.wbuf = appendHeader(t.wbuf[:0], m, t.checksum)
	t.wbuf = append(t.wbuf, m.data...)
	_, err := t.nc.Write(t.wbuf)
	if cap(t.wbuf) > 2*int(t.maxData)+headerSize {
		t.wbuf = nil
	}
	if err != nil {
		t.close(fmt.Errorf("adb: write %s: %w", cmdName(m.cmd), err))
	}
	return err
}

// run reads messages until the connection ends, then closes every stream.
func (t *transport) run() error {
	for {
		m, err := readMessage(t.br, t.maxData, t.checksum)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			t.close(err)
			return err
		}
		t.dispatch(m)
	}
}

func (t *transport) dispatch(m message) {
	switch m.cmd {
	case cmdOPEN:
		service := string(trimNUL(m.data))
		if t.onOpen == nil || m.arg0 == 0 {
			_ = t.send(message{cmd: cmdCLSE, arg0: 0, arg1: m.arg0})
			return
		}
		t.onOpen(m.arg0, service)
	case cmdOKAY:
		if s := t.stream(m.arg1); s != nil {
			s.okay(m.arg0)
		}
	case cmdWRTE:
		if s := t.stream(m.arg1); s != nil {
			s.deliver(m.data)
		} else {
			// Data for a stream we do not know: tell the peer it is gone.
			_ = t.send(message{cmd: cmdCLSE, arg0: 0, arg1: m.arg0})
		}
	case cmdCLSE:
		if s := t.stream(m.arg1); s != nil && (s.remote == 0 || s.remote == m.arg0 || m.arg0 == 0) {
			s.closeRemote()
		}
	default:
		// A late CNXN or AUTH, or a command this side does not use:
		// ignored, as adbd does.
	}
}

func (t *transport) stream(local uint32) *Stream {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.streams[local]
}

// newStream registers a stream with a fresh local id.
func (t *transport) newStream(remote uint32, service string) (*Stream, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return nil, t.err
	}
	if len(t.streams) >= maxStreams {
		return nil, fmt.Errorf("adb: %d streams open on this connection", len(t.streams))
	}
	t.nextID++
	if t.nextID == 0 {
		t.nextID = 1
	}
	s := &Stream{
		t: t, local: t.nextID, remote: remote, service: service,
		ready:  make(chan struct{}, 1),
		data:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		opened: make(chan struct{}),
	}
	t.streams[s.local] = s
	return s, nil
}

func (t *transport) forget(local uint32) {
	t.mu.Lock()
	delete(t.streams, local)
	t.mu.Unlock()
}

// close ends the transport with err and closes every stream.
func (t *transport) close(err error) {
	t.mu.Lock()
	if t.err != nil {
		t.mu.Unlock()
		return
	}
	if err == nil {
		err = ErrClosed
	}
	t.err = err
	streams := t.streams
	t.streams = map[uint32]*Stream{}
	t.mu.Unlock()
	close(t.done)
	_ = t.nc.Close()
	for _, s := range streams {
		s.closeRemote()
	}
}

func (t *transport) failure() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// Stream is one ADB stream: an ordered, flow-controlled byte stream to a
// service on the other side. Read returns the peer's data (acknowledging
// each message once it is consumed) and io.EOF after the peer closed;
// Write splits p into messages of at most the agreed size and waits for the
// peer's OKAY after each one. One goroutine may read while another writes;
// Close may be called from any goroutine, any number of times.
type Stream struct {
	t       *transport
	local   uint32
	remote  uint32 // set once the peer accepted (host side)
	service string

	ready  chan struct{} // one token: the peer may take one more WRTE
	data   chan struct{} // signalled when queue grows
	done   chan struct{} // closed when the stream ends, either side
	opened chan struct{} // closed when the peer accepted the OPEN

	mu         sync.Mutex
	queue      []chunk
	cur        []byte
	unacked    bool // cur came from a WRTE not yet acknowledged
	closed     bool
	sentClose  bool
	refused    bool
	openedOnce sync.Once
}

// Done is closed when the stream ends: closed by either side or by the end
// of the connection. Data already received can still be read.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Service is the service name the stream was opened for.
func (s *Stream) Service() string { return s.service }

func (s *Stream) okay(remote uint32) {
	s.openedOnce.Do(func() {
		s.mu.Lock()
		if s.remote == 0 {
			s.remote = remote
		}
		s.mu.Unlock()
		close(s.opened)
	})
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Stream) deliver(b []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(b) == 0 {
		s.mu.Unlock()
		_ = s.t.send(message{cmd: cmdOKAY, arg0: s.local, arg1: s.remote})
		return
	}
	if len(s.queue) >= maxQueued {
		s.mu.Unlock()
		s.t.close(errors.New("adb: the peer sent data without waiting for OKAY"))
		return
	}
	// When nothing else is held, acknowledge at once so the peer sends the
	// next block while this one is read (as adbd acknowledges once data is
	// buffered); otherwise acknowledge when it has been read. A stream so
	// holds at most two blocks.
	early := len(s.queue) == 0 && len(s.cur) == 0
	s.queue = append(s.queue, chunk{b: b, acked: early})
	s.mu.Unlock()
	if early {
		_ = s.t.send(message{cmd: cmdOKAY, arg0: s.local, arg1: s.remote})
	}
	select {
	case s.data <- struct{}{}:
	default:
	}
}

// chunk is the data of one WRTE, and whether it was acknowledged yet.
type chunk struct {
	b     []byte
	acked bool
}

// Read reads the peer's data. It returns io.EOF once the peer closed the
// stream and all its data was read, and ErrClosed after Close.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if len(s.cur) == 0 && len(s.queue) > 0 {
			s.cur, s.unacked = s.queue[0].b, !s.queue[0].acked
			s.queue = s.queue[1:]
		}
		if len(s.cur) > 0 {
			n := copy(p, s.cur)
			s.cur = s.cur[n:]
			ack := len(s.cur) == 0 && s.unacked && !s.closed
			if len(s.cur) == 0 {
				s.unacked = false
			}
			s.mu.Unlock()
			if ack {
				_ = s.t.send(message{cmd: cmdOKAY, arg0: s.local, arg1: s.remote})
			}
			return n, nil
		}
		closed, mine := s.closed, s.sentClose
		s.mu.Unlock()
		if closed {
			if mine {
				return 0, ErrClosed
			}
			return 0, io.EOF
		}
		select {
		case <-s.data:
		case <-s.done:
		}
	}
}

// Write sends p to the peer, in as many messages as the agreed maximum
// size needs, each after the peer acknowledged the previous one.
func (s *Stream) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		select {
		case <-s.ready:
		case <-s.done:
			return written, s.closedErr()
		}
		n := min(len(p), int(s.t.maxData))
		if err := s.t.send(message{cmd: cmdWRTE, arg0: s.local, arg1: s.remote, data: p[:n]}); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (s *Stream) closedErr() error {
	if err := s.t.failure(); err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("adb: connection ended: %w", err)
	}
	return ErrClosed
}

// Close closes the stream: the peer gets CLSE and later data is dropped.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed, s.sentClose = true, true
	s.queue, s.cur = nil, nil
	s.mu.Unlock()
	close(s.done)
	s.t.forget(s.local)
	select {
	case <-s.t.done:
		return nil
	default:
	}
	return s.t.send(message{cmd: cmdCLSE, arg0: s.local, arg1: s.remote})
}

// closeRemote ends the stream because the peer closed it (or the
// connection ended); data already received can still be read.
func (s *Stream) closeRemote() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.remote == 0 {
		s.refused = true
	}
	s.mu.Unlock()
	close(s.done)
	s.t.forget(s.local)
}
