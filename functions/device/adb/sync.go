package adb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// Request and reply ids of the sync: service. Every request and reply
// starts with a 4-letter id and a 4-byte little-endian number (a length,
// or for DONE in SEND the file's modification time).
const (
	syncSTAT = "STAT"
	syncLIST = "LIST"
	syncSEND = "SEND"
	syncRECV = "RECV"
	syncDENT = "DENT"
	syncDONE = "DONE"
	syncDATA = "DATA"
	syncOKAY = "OKAY"
	syncFAIL = "FAIL"
	syncQUIT = "QUIT"

	// SyncDataMax is the largest DATA block of the sync: service (64 KiB).
	SyncDataMax = 64 << 10
	// syncPathMax bounds a path in a sync request, as adbd does.
	syncPathMax = 1024
)

// Unix file type bits as the sync: service carries them.
const (
	unixTypeMask = 0o170000
	unixDir      = 0o040000
	unixRegular  = 0o100000
	unixSymlink  = 0o120000
)

// FileSystem is the storage the device side of sync: reads and writes.
// Paths are absolute device paths ("/data/local/tmp/app.apk").
type FileSystem interface {
	// Stat describes path; an error (fs.ErrNotExist and others) answers
	// the host that nothing is there.
	Stat(path string) (fs.FileInfo, error)
	// ReadDir lists the directory path.
	ReadDir(path string) ([]fs.FileInfo, error)
	// Open opens path for reading.
	Open(path string) (io.ReadCloser, error)
	// Create starts writing path with mode's permission bits. The file
	// appears whole at Commit; after Abort nothing of it remains.
	Create(path string, mode fs.FileMode) (FileWriter, error)
}

// FileWriter receives the bytes of one pushed file.
type FileWriter interface {
	io.Writer
	// Commit makes the file visible with modification time mtime.
	Commit(mtime time.Time) error
	// Abort drops what was written.
	Abort()
}

// ServeSync serves the sync: service on rw (the stream the host opened
// for "sync:") against fsys until the host sends QUIT or the stream ends.
// A failed transfer is answered with FAIL and a reason; the service then
// goes on serving requests, as adbd does.
func ServeSync(rw io.ReadWriter, fsys FileSystem) error {
	br := bufio.NewReaderSize(rw, SyncDataMax+8)
	bw := bufio.NewWriterSize(rw, SyncDataMax+8)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("adb: sync: read request: %w", err)
		}
		id, n := string(hdr[:4]), binary.LittleEndian.Uint32(hdr[4:])
		if id == syncQUIT {
			return nil
		}
		if n > syncPathMax {
			_ = syncFail(bw, fmt.Sprintf("path too long: %d bytes", n))
			return bw.Flush()
		}
		pb := make([]byte, n)
		if _, err := io.ReadFull(br, pb); err != nil {
			return fmt.Errorf("adb: sync: read %s path: %w", id, err)
		}
		path := string(pb)
		var err error
		switch id {
		case syncSTAT:
			err = serveStat(bw, fsys, path)
		case syncLIST:
			err = serveList(bw, fsys, path)
		case syncSEND:
			err = serveSend(br, bw, fsys, path)
		case syncRECV:
			err = serveRecv(bw, fsys, path)
		default:
			_ = syncFail(bw, "unknown sync request "+strconv.Quote(id))
			_ = bw.Flush()
			return fmt.Errorf("adb: sync: unknown request %q", id)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return fmt.Errorf("adb: sync: %s %s: %w", id, path, err)
		}
	}
}

func putHeader(w io.Writer, id string, n uint32) error {
	var h [8]byte
	copy(h[:4], id)
	binary.LittleEndian.PutUint32(h[4:], n)
	_, err := w.Write(h[:])
	return err
}

func syncFail(w io.Writer, reason string) error {
	if err := putHeader(w, syncFAIL, uint32(len(reason))); err != nil {
		return err
	}
	_, err := io.WriteString(w, reason)
	return err
}

// unixMode converts a Go file mode to the Unix st_mode the protocol uses.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	switch {
	case m.IsDir():
		u |= unixDir
	case m&fs.ModeSymlink != 0:
		u |= unixSymlink
	default:
		u |= unixRegular
	}
	return u
}

// goMode converts a Unix st_mode to a Go file mode.
func goMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	switch u & unixTypeMask {
	case unixDir:
		m |= fs.ModeDir
	case unixSymlink:
		m |= fs.ModeSymlink
	case unixRegular:
	default:
		m |= fs.ModeIrregular
	}
	return m
}

func serveStat(w io.Writer, fsys FileSystem, path string) error {
	var mode, size, mtime uint32
	if fi, err := fsys.Stat(path); err == nil {
		mode, size, mtime = unixMode(fi.Mode()), uint32(fi.Size()), uint32(fi.ModTime().Unix())
	}
	var b [16]byte
	copy(b[:4], syncSTAT)
	binary.LittleEndian.PutUint32(b[4:], mode)
	binary.LittleEndian.PutUint32(b[8:], size)
	binary.LittleEndian.PutUint32(b[12:], mtime)
	_, err := w.Write(b[:])
	return err
}

func serveList(w io.Writer, fsys FileSystem, path string) error {
	entries, err := fsys.ReadDir(path)
	if err == nil {
		for _, fi := range entries {
			name := fi.Name()
			var b [20]byte
			copy(b[:4], syncDENT)
			binary.LittleEndian.PutUint32(b[4:], unixMode(fi.Mode()))
			binary.LittleEndian.PutUint32(b[8:], uint32(fi.Size()))
			binary.LittleEndian.PutUint32(b[12:], uint32(fi.ModTime().Unix()))
			binary.LittleEndian.PutUint32(b[16:], uint32(len(name)))
			if _, err := w.Write(b[:]); err != nil {
				return err
			}
			if _, err := io.WriteString(w, name); err != nil {
				return err
			}
		}
	}
	var b [20]byte
	copy(b[:4], syncDONE)
	_, err = w.Write(b[:])
	return err
}

// serveSend receives one file: "path,mode" then DATA blocks and DONE. On a
// failure it still reads up to DONE, so the stream stays in step.
func serveSend(br *bufio.Reader, w io.Writer, fsys FileSystem, spec string) error {
	path, mode := spec, fs.FileMode(0o644)
	if i := strings.LastIndexByte(spec, ','); i >= 0 {
		if m, err := strconv.ParseUint(spec[i+1:], 10, 32); err == nil {
			path, mode = spec[:i], goMode(uint32(m)).Perm()
		}
	}
	var fail string
	fw, err := fsys.Create(path, mode)
	if err != nil {
		fail = err.Error()
	}
	var hdr [8]byte
	buf := make([]byte, SyncDataMax)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if fw != nil {
				fw.Abort()
			}
			return fmt.Errorf("read DATA: %w", err)
		}
		id, n := string(hdr[:4]), binary.LittleEndian.Uint32(hdr[4:])
		switch id {
		case syncDATA:
			if n > SyncDataMax {
				if fw != nil {
					fw.Abort()
				}
				_ = syncFail(w, fmt.Sprintf("DATA block of %d bytes", n))
				return fmt.Errorf("DATA block of %d bytes", n)
			}
			if _, err := io.ReadFull(br, buf[:n]); err != nil {
				if fw != nil {
					fw.Abort()
				}
				return fmt.Errorf("read DATA: %w", err)
			}
			if fw != nil && fail == "" {
				if _, err := fw.Write(buf[:n]); err != nil {
					fail = err.Error()
				}
			}
		case syncDONE:
			if fw != nil && fail == "" {
				if err := fw.Commit(time.Unix(int64(n), 0)); err != nil {
					fail = err.Error()
				}
			} else if fw != nil {
				fw.Abort()
			}
			if fail != "" {
				return syncFail(w, fail)
			}
			return putHeader(w, syncOKAY, 0)
		default:
			if fw != nil {
				fw.Abort()
			}
			_ = syncFail(w, "unexpected "+strconv.Quote(id)+" during SEND")
			return fmt.Errorf("unexpected %q during SEND", id)
		}
	}
}

func serveRecv(w io.Writer, fsys FileSystem, path string) error {
	f, err := fsys.Open(path)
	if err != nil {
		return syncFail(w, err.Error())
	}
	defer f.Close()
	buf := make([]byte, SyncDataMax)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if err := putHeader(w, syncDATA, uint32(n)); err != nil {
				return err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return putHeader(w, syncDONE, 0)
		}
		if err != nil {
			return syncFail(w, err.Error())
		}
	}
}
