package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IsGenerated reports whether data starts with a "Code generated ... DO NOT
// EDIT." line, the marker that lets Write replace or delete the file.
func IsGenerated(data []byte) bool {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	l := strings.TrimSpace(string(line))
	return strings.HasPrefix(l, "# Code generated ") && strings.HasSuffix(l, " DO NOT EDIT.")
}

// Owned lists the generated files present under root that the renderer owns:
// files directly in KnativeDir and TriggerDir that carry the marker, and
// the Whole files whatever their content. Paths are relative to root, slash
// separated and sorted.
func Owned(root string) ([]string, error) {
	var out []string
	for _, dir := range []string{KnativeDir, TriggerDir} {
		entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(dir)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			rel := dir + "/" + e.Name()
			gen, err := startsWithMarker(filepath.Join(root, filepath.FromSlash(rel)))
			if err != nil {
				return nil, err
			}
			if gen {
				out = append(out, rel)
			}
		}
	}
	for _, rel := range Whole {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err == nil {
			out = append(out, rel)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

func startsWithMarker(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return false, nil
	}
	return IsGenerated(line), nil
}

// Diff compares the rendered files with what is under root and describes each
// difference on one line ("missing", "differs", "stale"), sorted; an empty
// result means the committed files are up to date.
func Diff(root string, files map[string][]byte) ([]string, error) {
	var out []string
	for _, rel := range sortedKeys(files) {
		have, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, "missing: "+rel)
		case err != nil:
			return nil, err
		case !bytes.Equal(have, files[rel]):
			out = append(out, "differs: "+rel)
		}
	}
	owned, err := Owned(root)
	if err != nil {
		return nil, err
	}
	for _, rel := range owned {
		if _, ok := files[rel]; !ok {
			out = append(out, "stale: "+rel+" (generated, no longer rendered)")
		}
	}
	return out, nil
}

// Write brings root up to date: it writes every rendered file that is missing
// or differs and deletes owned generated files that are no longer rendered.
// It returns the paths it changed, sorted. A non-generated file in the way of
// a rendered one is not overwritten (an error says so).
func Write(root string, files map[string][]byte) (changed []string, err error) {
	owned, err := Owned(root)
	if err != nil {
		return nil, err
	}
	isOwned := make(map[string]bool, len(owned))
	for _, rel := range owned {
		isOwned[rel] = true
	}
	for _, rel := range sortedKeys(files) {
		path := filepath.Join(root, filepath.FromSlash(rel))
		have, err := os.ReadFile(path)
		switch {
		case err == nil && bytes.Equal(have, files[rel]):
			continue
		case err == nil && !isOwned[rel]:
			return changed, fmt.Errorf("%s exists and is not generated; move it away first", rel)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return changed, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return changed, err
		}
		if err := os.WriteFile(path, files[rel], 0o644); err != nil {
			return changed, err
		}
		changed = append(changed, rel)
	}
	for _, rel := range owned {
		if _, ok := files[rel]; ok {
			continue
		}
		if err := os.Remove(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
			return changed, err
		}
		changed = append(changed, rel)
	}
	sort.Strings(changed)
	return changed, nil
}
