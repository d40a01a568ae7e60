// Package standinimage builds the phone stand-in image (infra/phone-standin,
// a stand-in for a redroid phone, not Android) on a Docker engine for tests
// and benchmarks: a static binary and the Dockerfile, FROM scratch, as
// `make phone-standin` does.
package standinimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// Tag is the image's name, as `make phone-standin` tags it.
const Tag = "cloudphone/phone-standin:latest"

// SourceLabel is the image label holding the hash of the sources it was
// built from; Ensure rebuilds when the sources changed.
const SourceLabel = "cloudphone.standin.source"

var (
	once    sync.Once
	onceErr error
)

// Ensure makes sure Tag exists on cli's engine and was built from the
// current sources, building it (go build with CGO_ENABLED=0, then an image
// build FROM scratch) when it is missing or stale. It runs once per process;
// later calls return the first call's result. Safe for concurrent use.
func Ensure(ctx context.Context, cli *client.Client) error {
	once.Do(func() { onceErr = ensure(ctx, cli) })
	return onceErr
}

func ensure(ctx context.Context, cli *client.Client) error {
	dir, err := sourceDir(ctx)
	if err != nil {
		return err
	}
	hash, err := sourceHash(dir)
	if err != nil {
		return err
	}
	if img, err := cli.ImageInspect(ctx, Tag); err == nil && img.Config != nil && img.Config.Labels[SourceLabel] == hash {
		return nil
	}
	tmp, err := os.MkdirTemp("", "phone-standin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "phone-standin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the phone stand-in binary: %v\n%s", err, out)
	}
	tarball, err := buildContext(map[string]string{
		"phone-standin": bin,
		"Dockerfile":    filepath.Join(dir, "Dockerfile"),
	})
	if err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, tarball, build.ImageBuildOptions{
		Tags: []string{Tag}, Remove: true, ForceRemove: true,
		Labels: map[string]string{SourceLabel: hash},
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", Tag, err)
	}
	defer resp.Body.Close()
	return buildResult(resp.Body)
}

// sourceDir finds infra/phone-standin in the module the caller runs in.
func sourceDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("find the module root: not inside the cloudphone module")
	}
	return filepath.Join(filepath.Dir(mod), "infra", "phone-standin"), nil
}

// sourceHash hashes what the image is built from: the stand-in's Go files
// and Dockerfile, and the ADB package it serves the protocol with.
func sourceHash(dir string) (string, error) {
	h := sha256.New()
	var names []string
	for _, d := range []string{dir, filepath.Join(dir, "..", "..", "functions", "device", "adb")} {
		m, err := filepath.Glob(filepath.Join(d, "*.go"))
		if err != nil {
			return "", err
		}
		for _, f := range m {
			if !strings.HasSuffix(f, "_test.go") {
				names = append(names, f)
			}
		}
	}
	names = append(names, filepath.Join(dir, "Dockerfile"))
	sort.Strings(names)
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("read the stand-in sources: %w", err)
		}
		rel, _ := filepath.Rel(dir, name)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// buildContext tars files (name in the context → path on disk) and the
// empty directories the Dockerfile copies.
func buildContext(files map[string]string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	// The directories the phone's user owns in the image (see the
	// Dockerfile), empty here.
	for _, dir := range []string{"data/", "sdcard/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// buildResult reads the engine's JSON progress stream and returns the first
// error it reports.
func buildResult(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the image build output: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build image %s: %s", Tag, msg.Error)
		}
	}
}
