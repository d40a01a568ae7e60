package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/adb"
)

// files is the phone's file system: device paths ("/data/local/tmp/x")
// mapped under a root directory on the machine the stand-in runs on ("/"
// in its container, a scratch directory in tests).
type files struct{ root string }

// host returns where the device path p lives; ".." cannot leave the root.
func (f files) host(p string) string {
	return filepath.Join(f.root, filepath.FromSlash(path.Clean("/"+p)))
}

// abs resolves p against the working directory cwd, as a shell does.
func abs(cwd, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(cwd, p)
}

func (f files) Stat(p string) (fs.FileInfo, error) { return os.Stat(f.host(p)) }

func (f files) ReadDir(p string) ([]fs.FileInfo, error) {
	entries, err := os.ReadDir(f.host(p))
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(entries))
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			out = append(out, fi)
		}
	}
	return out, nil
}

func (f files) Open(p string) (io.ReadCloser, error) {
	fi, err := os.Stat(f.host(p))
	if err != nil {
		return nil, deviceErr(p, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s: Is a directory", p)
	}
	return os.Open(f.host(p))
}

// Create writes p through a temporary file renamed into place at Commit,
// creating missing directories, so a broken push leaves nothing behind.
func (f files) Create(p string, mode fs.FileMode) (adb.FileWriter, error) {
	dst := f.host(p)
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s: Is a directory", p)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o777); err != nil {
		return nil, deviceErr(path.Dir(p), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".push-*")
	if err != nil {
		return nil, deviceErr(p, err)
	}
	return &pushFile{f: tmp, dst: dst, mode: mode.Perm()}, nil
}

type pushFile struct {
	f    *os.File
	dst  string
	mode fs.FileMode
}

func (w *pushFile) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *pushFile) Commit(mtime time.Time) error {
	err := errors.Join(w.f.Chmod(w.mode), w.f.Close())
	if err == nil {
		err = os.Chtimes(w.f.Name(), mtime, mtime)
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.dst)
	}
	if err != nil {
		_ = os.Remove(w.f.Name())
	}
	return err
}

func (w *pushFile) Abort() {
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// deviceErr words a file error as Android's tools do.
func deviceErr(p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: No such file or directory", p)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: Permission denied", p)
	}
	return fmt.Errorf("%s: %v", p, err)
}
