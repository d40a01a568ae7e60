package deviceruntime

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The runtime does not take a command's word for what to run or where: a
// device command names an image and a Docker engine, and whoever can send one
// could otherwise start any image (privileged, when its name says redroid) on
// any address. It runs only the operator's images and talks only to the
// default engine and the engines of registered nodes; anything else is
// refused and reported failed, never retried.

// errRefused is a command outside the operator's policy.
type errRefused struct{ reason string }

func (e errRefused) Error() string { return "refused: " + e.reason }

// allowedImages is the operator's image list: the default image and
// DEVICE_IMAGES.
func (c Config) allowedImages() (map[string]bool, error) {
	out := map[string]bool{c.Image: true}
	for _, im := range strings.Split(c.Images, ",") {
		if im = strings.TrimSpace(im); im != "" {
			if strings.ContainsAny(im, " \t\n") {
				return nil, fmt.Errorf("DEVICE_IMAGES: %q is not an image reference", im)
			}
			out[im] = true
		}
	}
	return out, nil
}

// registeredHost says whether a node (table nodes of the device context, in
// the same database) has the Docker engine.
const registeredHost = `SELECT EXISTS (SELECT 1 FROM nodes WHERE docker_host = $1 AND deleted_at IS NULL)`

// admit checks the device a command of op would act on against the policy:
// an engine other than the default must be a registered node's, and a
// command that brings a container up must name an allowed image. It returns
// errRefused for a command outside the policy, another error when the
// check itself failed (it may pass on retry).
func (f *Function) admit(ctx context.Context, q pgx.Tx, op string, d *device) error {
	if f.engines.key(d.DockerHost) != "" {
		var ok bool
		if err := q.QueryRow(ctx, registeredHost, d.DockerHost).Scan(&ok); err != nil {
			return errBusy{fmt.Errorf("look up the node of Docker host %s: %w", d.DockerHost, err)}
		}
		if !ok {
			return errRefused{fmt.Sprintf("Docker host %s is not a registered node's (/api/v1/admin/nodes)", d.DockerHost)}
		}
	}
	switch op {
	case OpCreate, OpStart, OpRestart:
		if !f.images[d.Image] {
			return errRefused{fmt.Sprintf("image %s is not allowed (CLOUDPHONE_DEVICE_IMAGE, DEVICE_IMAGES)", d.Image)}
		}
	}
	return nil
}
