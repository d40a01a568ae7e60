package adb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Commands of the transport, as four ASCII letters read little-endian.
const (
	cmdCNXN = 0x4e584e43 // "CNXN": connect
	cmdAUTH = 0x48545541 // "AUTH": authentication
	cmdOPEN = 0x4e45504f // "OPEN": open a stream
	cmdOKAY = 0x59414b4f // "OKAY": stream ready / acknowledge
	cmdWRTE = 0x45545257 // "WRTE": data on a stream
	cmdCLSE = 0x45534c43 // "CLSE": close a stream
	cmdSTLS = 0x534c5453 // "STLS": switch to TLS (not offered here)
)

// AUTH message types (arg0).
const (
	authToken        = 1
	authSignature    = 2
	authRSAPublicKey = 3
)

const (
	// VersionMin is the first protocol version: every data block carries
	// a checksum (the sum of its bytes).
	VersionMin = 0x01000000
	// VersionSkipChecksum is the version from which receivers no longer
	// check the checksum and senders may leave it zero. Both sides use the
	// smaller of the two versions offered in CNXN.
	VersionSkipChecksum = 0x01000001

	// MaxData is the largest data block this package offers to send and
	// receive in one message (1 MiB, as adb 29 does). The connection uses
	// the smaller of the two sides' values.
	MaxData = 1 << 20

	// maxDataLimit bounds what a peer may announce, so a hostile peer
	// cannot make us allocate without limit.
	maxDataLimit = 1 << 20
	headerSize   = 24
)

// message is one transport message.
type message struct {
	cmd, arg0, arg1 uint32
	data            []byte
}

func (m message) String() string {
	return fmt.Sprintf("%s(%d, %d, %d bytes)", cmdName(m.cmd), m.arg0, m.arg1, len(m.data))
}

func cmdName(c uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], c)
	for _, x := range b {
		if x < 'A' || x > 'Z' {
			return fmt.Sprintf("0x%08x", c)
		}
	}
	return string(b[:])
}

// checksum is the protocol's data checksum: the sum of the bytes.
func checksum(data []byte) uint32 {
	var s uint32
	for _, b := range data {
		s += uint32(b)
	}
	return s
}

var errBadMagic = errors.New("adb: not an ADB message (bad magic)")

// readMessage reads one message whose data is at most limit bytes. When
// verify is set the data checksum is checked.
func readMessage(r io.Reader, limit uint32, verify bool) (message, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return message{}, err
	}
	m := message{
		cmd:  binary.LittleEndian.Uint32(h[0:]),
		arg0: binary.LittleEndian.Uint32(h[4:]),
		arg1: binary.LittleEndian.Uint32(h[8:]),
	}
	n := binary.LittleEndian.Uint32(h[12:])
	if binary.LittleEndian.Uint32(h[20:]) != m.cmd^0xffffffff {
		return message{}, errBadMagic
	}
	if n > limit {
		return message{}, fmt.Errorf("adb: %s carries %d bytes, more than the %d agreed", cmdName(m.cmd), n, limit)
	}
	if n > 0 {
		m.data = make([]byte, n)
		if _, err := io.ReadFull(r, m.data); err != nil {
			return message{}, fmt.Errorf("adb: read %s data: %w", cmdName(m.cmd), err)
		}
	}
	if verify && checksum(m.data) != binary.LittleEndian.Uint32(h[16:]) {
		return message{}, fmt.Errorf("adb: %s data checksum mismatch", cmdName(m.cmd))
	}
	return m, nil
}

// appendHeader appends the header of m to b; sum says whether to fill in
// the checksum (versions before VersionSkipChecksum need it).
func appendHeader(b []byte, m message, sum bool) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:], m.cmd)
	binary.LittleEndian.PutUint32(h[4:], m.arg0)
	binary.LittleEndian.PutUint32(h[8:], m.arg1)
	binary.LittleEndian.PutUint32(h[12:], uint32(len(m.data)))
	if sum {
		binary.LittleEndian.PutUint32(h[16:], checksum(m.data))
	}
	binary.LittleEndian.PutUint32(h[20:], m.cmd^0xffffffff)
	return append(b, h[:]...)
}
