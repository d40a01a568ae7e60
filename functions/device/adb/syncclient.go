package adb

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// FileInfo describes a file on the device, as the sync: service reports it
// (sizes above 4 GiB wrap, as in the protocol).
type FileInfo struct {
	Name    string // base name (List) or the path asked for (Stat)
	Mode    fs.FileMode
	Size    int64
	ModTime time.Time
}

// ErrNotExist is returned by Stat when nothing is at the path (it wraps
// fs.ErrNotExist).
var ErrNotExist = fmt.Errorf("adb: %w", fs.ErrNotExist)

// syncSession is one sync: stream.
type syncSession struct {
	s  *Stream
	br *bufio.Reader
	bw *bufio.Writer
}

func (c *Client) openSync(ctx context.Context) (*syncSession, error) {
	s, err := c.Open(ctx, "sync:")
	if err != nil {
		return nil, err
	}
	return &syncSession{s: s, br: bufio.NewReaderSize(s, SyncDataMax+8), bw: bufio.NewWriterSize(s, int(c.t.maxData))}, nil
}

// close says QUIT (best effort) and closes the stream.
func (ss *syncSession) close() {
	_ = putHeader(ss.bw, syncQUIT, 0)
	_ = ss.bw.Flush()
	_ = ss.s.Close()
}

func (ss *syncSession) request(id, path string) error {
	if len(path) > syncPathMax {
		return fmt.Errorf("path of %d bytes, over %d", len(path), syncPathMax)
	}
	if err := putHeader(ss.bw, id, uint32(len(path))); err != nil {
		return err
	}
	if _, err := ss.bw.WriteString(path); err != nil {
		return err
	}
	return ss.bw.Flush()
}

// reply reads an 8-byte reply header; a FAIL becomes an error with its
// reason.
func (ss *syncSession) reply() (string, uint32, error) {
	var h [8]byte
	if _, err := io.ReadFull(ss.br, h[:]); err != nil {
		return "", 0, fmt.Errorf("read reply: %w", err)
	}
	id, n := string(h[:4]), binary.LittleEndian.Uint32(h[4:])
	if id == syncFAIL {
		if n > 64<<10 {
			return "", 0, fmt.Errorf("FAIL reason of %d bytes", n)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(ss.br, msg); err != nil {
			return "", 0, fmt.Errorf("read FAIL reason: %w", err)
		}
		return "", 0, fmt.Errorf("the device refused: %s", msg)
	}
	return id, n, nil
}

// Stat describes path on the device; ErrNotExist when nothing is there.
func (c *Client) Stat(ctx context.Context, path string) (FileInfo, error) {
	ss, err := c.openSync(ctx)
	if err != nil {
		return FileInfo{}, err
	}
	defer ss.close()
	if err := ss.request(syncSTAT, path); err != nil {
		return FileInfo{}, fmt.Errorf("adb: stat %s: %w", path, ctxErr(ctx, err))
	}
	var b [16]byte
	if _, err := io.ReadFull(ss.br, b[:]); err != nil {
		return FileInfo{}, fmt.Errorf("adb: stat %s: %w", path, ctxErr(ctx, err))
	}
	if string(b[:4]) != syncSTAT {
		return FileInfo{}, fmt.Errorf("adb: stat %s: unexpected reply %q", path, b[:4])
	}
	mode := binary.LittleEndian.Uint32(b[4:])
	if mode == 0 {
		return FileInfo{}, fmt.Errorf("stat %s: %w", path, ErrNotExist)
	}
	return FileInfo{Name: path, Mode: goMode(mode), Size: int64(binary.LittleEndian.Uint32(b[8:])),
		ModTime: time.Unix(int64(binary.LittleEndian.Uint32(b[12:])), 0)}, nil
}

// List lists the directory path on the device (including "." and ".."
// when the device reports them). A path that is not a directory lists
// nothing.
func (c *Client) List(ctx context.Context, path string) ([]FileInfo, error) {
	ss, err := c.openSync(ctx)
	if err != nil {
		return nil, err
	}
	defer ss.close()
	if err := ss.request(syncLIST, path); err != nil {
		return nil, fmt.Errorf("adb: list %s: %w", path, ctxErr(ctx, err))
	}
	var out []FileInfo
	for {
		var b [20]byte
		if _, err := io.ReadFull(ss.br, b[:]); err != nil {
			return nil, fmt.Errorf("adb: list %s: %w", path, ctxErr(ctx, err))
		}
		switch string(b[:4]) {
		case syncDONE:
			return out, nil
		case syncDENT:
		default:
			return nil, fmt.Errorf("adb: list %s: unexpected reply %q", path, b[:4])
		}
		n := binary.LittleEndian.Uint32(b[16:])
		if n > syncPathMax {
			return nil, fmt.Errorf("adb: list %s: name of %d bytes", path, n)
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(ss.br, name); err != nil {
			return nil, fmt.Errorf("adb: list %s: %w", path, ctxErr(ctx, err))
		}
		out = append(out, FileInfo{Name: string(name), Mode: goMode(binary.LittleEndian.Uint32(b[4:])),
			Size: int64(binary.LittleEndian.Uint32(b[8:])), ModTime: time.Unix(int64(binary.LittleEndian.Uint32(b[12:])), 0)})
	}
}

// Push writes the size bytes read from r to remotePath on the device with
// permission bits mode (the device creates missing directories). It fails
// when r yields fewer or more than size bytes, and the device then drops
// the partial file. ctx cancels the transfer.
func (c *Client) Push(ctx context.Context, r io.Reader, size int64, remotePath string, mode fs.FileMode) error {
	if size < 0 {
		return fmt.Errorf("adb: push %s: negative size %d", remotePath, size)
	}
	ss, err := c.openSync(ctx)
	if err != nil {
		return err
	}
	defer ss.close()
	if err := ss.push(r, size, remotePath, mode); err != nil {
		return fmt.Errorf("adb: push %s: %w", remotePath, ctxErr(ctx, err))
	}
	return nil
}

func (ss *syncSession) push(r io.Reader, size int64, remotePath string, mode fs.FileMode) error {
	spec := fmt.Sprintf("%s,%d", remotePath, unixRegular|uint32(mode.Perm()))
	if len(spec) > syncPathMax {
		return fmt.Errorf("path of %d bytes, over %d", len(spec), syncPathMax)
	}
	if err := putHeader(ss.bw, syncSEND, uint32(len(spec))); err != nil {
		return err
	}
	if _, err := ss.bw.WriteString(spec); err != nil {
		return err
	}
	buf := make([]byte, SyncDataMax)
	var sent int64
	var readErr error
	for readErr == nil {
		var n int
		n, readErr = io.ReadFull(r, buf[:min(int64(len(buf)), size-sent+1)])
		if n == 0 {
			break
		}
		if sent+int64(n) > size {
			readErr = fmt.Errorf("the reader holds more than %d bytes", size)
			break
		}
		if err := putHeader(ss.bw, syncDATA, uint32(n)); err != nil {
			return err
		}
		if _, err := ss.bw.Write(buf[:n]); err != nil {
			return err
		}
		sent += int64(n)
	}
	if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
		readErr = nil
	}
	if readErr == nil && sent != size {
		readErr = fmt.Errorf("the reader ended after %d of %d bytes", sent, size)
	}
	if readErr != nil {
		// Abandon the transfer: closing the stream without DONE makes the
		// device drop what it received.
		return readErr
	}
	if err := putHeader(ss.bw, syncDONE, uint32(time.Now().Unix())); err != nil {
		return err
	}
	if err := ss.bw.Flush(); err != nil {
		return err
	}
	id, _, err := ss.reply()
	if err != nil {
		return err
	}
	if id != syncOKAY {
		return fmt.Errorf("unexpected reply %q", id)
	}
	return nil
}

// Pull copies remotePath from the device to w and returns the number of
// bytes copied. ctx cancels the transfer.
func (c *Client) Pull(ctx context.Context, remotePath string, w io.Writer) (int64, error) {
	ss, err := c.openSync(ctx)
	if err != nil {
		return 0, err
	}
	defer ss.close()
	n, err := ss.pull(remotePath, w)
	if err != nil {
		return n, fmt.Errorf("adb: pull %s: %w", remotePath, ctxErr(ctx, err))
	}
	return n, nil
}

func (ss *syncSession) pull(remotePath string, w io.Writer) (int64, error) {
	if err := ss.request(syncRECV, remotePath); err != nil {
		return 0, err
	}
	var total int64
	for {
		id, n, err := ss.reply()
		if err != nil {
			return total, err
		}
		switch id {
		case syncDONE:
			return total, nil
		case syncDATA:
			if n > SyncDataMax {
				return total, fmt.Errorf("DATA block of %d bytes", n)
			}
			m, err := io.CopyN(w, ss.br, int64(n))
			total += m
			if err != nil {
				return total, err
			}
		default:
			return total, fmt.Errorf("unexpected reply %q", id)
		}
	}
}
