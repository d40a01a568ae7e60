package rehearse

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// BuildImages builds the images the units run, as `make images` does (FROM
// scratch, infra/image/Dockerfile, the one binary), tagged with the units'
// image names and tag (empty: the tag stack.yml names). Only the two
// binaries the units need are built, with the Go build cache, into binDir
// (empty: a temporary directory, removed after).
func BuildImages(ctx context.Context, cli *client.Client, root, tag, binDir string, units []Unit) error {
	dir := binDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "rehearse-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Every bundle runs the bundle binary (FUNCTIONS picks its functions),
	// the broker its own; one go build makes both, as bin/function and
	// bin/broker of `make build`. Without -trimpath, and static as make test
	// builds its tests, the build reuses the packages the tests compiled.
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", dir+"/", "./assembly/cmd/function", "./infra/cmd/broker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build the bundle and broker binaries: %v\n%s", err, out)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "infra", "image", "Dockerfile"))
	if err != nil {
		return err
	}
	// Every bundle's image is the same (the Dockerfile and bin/function),
	// so it is built once and tagged with each bundle's name; the broker's
	// once too.
	built := map[string]string{} // binary → the first reference built from it
	for _, u := range units {
		bin := "function"
		if u.Name == brokerUnit {
			bin = "broker"
		}
		ref := imageRef(u.Image, tag)
		if first, ok := built[bin]; ok {
			if err := cli.ImageTag(ctx, first, ref); err != nil {
				return fmt.Errorf("tag image %s as %s: %w", first, ref, err)
			}
			continue
		}
		binary, err := os.ReadFile(filepath.Join(dir, bin))
		if err != nil {
			return err
		}
		ctxTar, err := tarOf(map[string][]byte{"Dockerfile": dockerfile, bin: binary})
		if err != nil {
			return err
		}
		resp, err := cli.ImageBuild(ctx, ctxTar, build.ImageBuildOptions{
			Tags: []string{ref}, Remove: true, ForceRemove: true,
			BuildArgs: map[string]*string{"BINARY": &bin},
		})
		if err != nil {
			return fmt.Errorf("build image %s: %w", ref, err)
		}
		err = buildResult(resp.Body, ref)
		resp.Body.Close()
		if err != nil {
			return err
		}
		built[bin] = ref
	}
	return nil
}

// imageRef is ref with its tag replaced by tag (unless empty).
func imageRef(ref, tag string) string {
	if tag == "" {
		return ref
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref + ":" + tag
}

func tarOf(files map[string][]byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
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
func buildResult(r io.Reader, ref string) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the build output of %s: %w", ref, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build image %s: %s", ref, msg.Error)
		}
	}
}
