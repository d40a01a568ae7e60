package adb

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Packet ids of the shell,v2 protocol: every packet is one id byte, a
// 4-byte little-endian length and that many bytes.
const (
	ShellStdin      = 0
	ShellStdout     = 1
	ShellStderr     = 2
	ShellExit       = 3 // one byte: the exit code
	ShellCloseStdin = 4
	ShellWindowSize = 5 // "rows x cols,xpixels x ypixels"
)

// maxShellPacket bounds a shell,v2 packet this package accepts.
const maxShellPacket = 1 << 20

// ShellConn frames the shell,v2 protocol over a stream. Writes of whole
// packets are serialised, so stdout and stderr may be written from
// different goroutines; reads belong to one goroutine.
type ShellConn struct {
	rw  io.ReadWriter
	wmu sync.Mutex
	hdr [5]byte
}

// NewShellConn frames rw (usually a *Stream opened for "shell,v2,…").
func NewShellConn(rw io.ReadWriter) *ShellConn { return &ShellConn{rw: rw} }

// WritePacket sends one packet.
func (c *ShellConn) WritePacket(id byte, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf := make([]byte, 5+len(data))
	buf[0] = id
	binary.LittleEndian.PutUint32(buf[1:], uint32(len(data)))
	copy(buf[5:], data)
	_, err := c.rw.Write(buf)
	return err
}

// ReadPacket reads the next packet; io.EOF when the stream ended between
// packets.
func (c *ShellConn) ReadPacket() (byte, []byte, error) {
	if _, err := io.ReadFull(c.rw, c.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("adb: shell,v2 packet header cut short: %w", err)
		}
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(c.hdr[1:])
	if n > maxShellPacket {
		return 0, nil, fmt.Errorf("adb: shell,v2 packet of %d bytes", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c.rw, data); err != nil {
		return 0, nil, fmt.Errorf("adb: shell,v2 packet cut short: %w", err)
	}
	return c.hdr[0], data, nil
}

// Writer returns an io.Writer that sends each Write as packets of id
// (ShellStdout or ShellStderr).
func (c *ShellConn) Writer(id byte) io.Writer { return shellWriter{c, id} }

type shellWriter struct {
	c  *ShellConn
	id byte
}

func (w shellWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxShellPacket)
		if err := w.c.WritePacket(w.id, p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// ShellService is a parsed shell service name: "shell:CMD",
// "shell,v2,raw:CMD", "shell,v2,TERM=xterm,pty:CMD" and so on.
type ShellService struct {
	V2      bool   // packets framed as shell,v2
	PTY     bool   // the host asked for a terminal ("pty", or no "raw" with an empty command)
	Term    string // TERM= argument, if any
	Command string // empty for an interactive shell
}

// ParseShellService parses a shell service name; ok is false when name is
// not one.
func ParseShellService(name string) (ShellService, bool) {
	head, cmd, found := strings.Cut(name, ":")
	if !found {
		return ShellService{}, false
	}
	args := strings.Split(head, ",")
	if args[0] != "shell" {
		return ShellService{}, false
	}
	svc := ShellService{Command: cmd, PTY: cmd == ""}
	for _, a := range args[1:] {
		switch {
		case a == "v2":
			svc.V2 = true
		case a == "raw":
			svc.PTY = false
		case a == "pty":
			svc.PTY = true
		case strings.HasPrefix(a, "TERM="):
			svc.Term = strings.TrimPrefix(a, "TERM=")
		}
	}
	return svc, true
}
