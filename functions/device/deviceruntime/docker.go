package deviceruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/cloudphone/cloudphone/functions/device/adb"
)

// engines hands out one Docker client per engine (docker_host), made on
// first use. Safe for concurrent use.
type engines struct {
	cfg     Config
	labels  map[string]string // extra labels, see Config.Labels
	log     *slog.Logger
	mu      sync.Mutex
	clients map[string]*client.Client
	nodes   map[string]nodeRef // registered nodes by id (see setNodes)
	netMu   sync.Mutex         // serializes ensureNetwork
}

// setNodes records the registered nodes, whose names and ids pick the TLS
// files of their engines and whose engines tell which containers each
// engine's view holds.
func (e *engines) setNodes(ns []nodeRef) {
	m := make(map[string]nodeRef, len(ns))
	for _, n := range ns {
		m[n.ID] = n
	}
	e.mu.Lock()
	e.nodes = m
	e.mu.Unlock()
}

// nodeEngine returns the engine (a key) of registered node id.
func (e *engines) nodeEngine(id string) (string, bool) {
	e.mu.Lock()
	n, ok := e.nodes[id]
	e.mu.Unlock()
	if !ok {
		return "", false
	}
	return e.key(n.DockerHost), true
}

func newEngines(cfg Config, labels map[string]string, log *slog.Logger) *engines {
	return &engines{cfg: cfg, labels: labels, log: log, clients: map[string]*client.Client{}, nodes: map[string]nodeRef{}}
}

// mine reports whether a listed managed container belongs to this instance.
func (e *engines) mine(labels map[string]string) bool {
	return labels[LabelInstance] == e.cfg.Instance
}

// managedFilter selects the containers this runtime manages (see mine for
// the instance, which a label filter cannot express for the empty one).
func (e *engines) managedFilter() filters.Args {
	args := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))
	for k, v := range e.labels {
		args.Add("label", k+"="+v)
	}
	return args
}

// key is the engine a device's docker_host names: "" for the default
// engine, however it is spelt.
func (e *engines) key(host string) string {
	if host == "" || host == e.defaultHost() {
		return ""
	}
	return host
}

// defaultHost is the address of the default engine.
func (e *engines) defaultHost() string {
	if e.cfg.DockerHost != "" {
		return e.cfg.DockerHost
	}
	if h := os.Getenv(client.EnvOverrideHost); h != "" {
		return h
	}
	return client.DefaultDockerHost
}

// client returns the client of host ("" = the default engine); nodeID (or
// else the registered node of that engine) picks the node's TLS directory
// for tcp:// engines.
func (e *engines) client(host, nodeID string) (*client.Client, error) {
	host = e.key(host)
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.clients[host]; ok {
		return c, nil
	}
	ref, ok := e.nodes[nodeID]
	if !ok {
		for _, n := range e.nodes {
			if e.key(n.DockerHost) == host {
				ref = n
			}
		}
	}
	if ref.ID == "" {
		ref.ID = nodeID
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	target := host
	if target == "" {
		target = e.cfg.DockerHost
	}
	if target != "" {
		opts = append(opts, client.WithHost(target))
		if strings.HasPrefix(target, "tcp://") || strings.HasPrefix(target, "https://") {
			ca, cert, key := tlsMaterial(e.cfg, ref.Name, ref.ID)
			if ca != "" || cert != "" || key != "" {
				opts = append(opts, client.WithTLSClientConfig(ca, cert, key))
			}
		}
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", describeHost(target), err)
	}
	e.clients[host] = c
	return c, nil
}

// hostOf names the engine of c for messages.
func hostOf(c *client.Client) string { return describeHost(c.DaemonHost()) }

func describeHost(h string) string {
	if h == "" {
		if env := os.Getenv(client.EnvOverrideHost); env != "" {
			return env
		}
		return client.DefaultDockerHost
	}
	return h
}

func (e *engines) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, c := range e.clients {
		_ = c.Close()
		delete(e.clients, k)
	}
}

// errBusy is a failure that passes once the engine finished what it is
// doing.
type errBusy struct{ error }

func (e errBusy) Unwrap() error { return e.error }

// transient reports whether a Docker failure may pass on retry.
func transient(err error) bool {
	return errors.As(err, &errBusy{}) || client.IsErrConnectionFailed(err) || cerrdefs.IsUnavailable(err) ||
		errors.Is(err, context.DeadlineExceeded) || cerrdefs.IsDeadlineExceeded(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || isNetError(err)
}

func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue)
}

// errImageMissing is a create whose image the engine does not have.
type errImageMissing struct{ image, host string }

func (e errImageMissing) Error() string {
	return fmt.Sprintf("image %s not found on the Docker engine at %s; build the stand-in with `make phone-standin` "+
		"and set CLOUDPHONE_DEVICE_IMAGE=cloudphone/phone-standin:latest (or pull the image onto that engine)", e.image, e.host)
}

// ensureImage checks that the engine has img, pulling it when configured.
func (f *Function) ensureImage(ctx context.Context, c *client.Client, img string) error {
	if _, err := c.ImageInspect(ctx, img); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s on %s: %w", img, hostOf(c), err)
	}
	if !f.cfg.PullImages {
		return errImageMissing{image: img, host: hostOf(c)}
	}
	rc, err := c.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull image %s on %s: %w", img, hostOf(c), err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("pull image %s on %s: %w", img, hostOf(c), err)
	}
	if _, err := c.ImageInspect(ctx, img); err != nil {
		return errImageMissing{image: img, host: hostOf(c)}
	}
	return nil
}

// privileged says whether img's containers run privileged.
func (f *Function) privileged(img string) bool {
	switch strings.ToLower(f.cfg.Privileged) {
	case "true", "1", "yes":
		return true
	case "auto":
		return strings.Contains(img, "redroid")
	}
	return false
}

// containerSpec is the container d runs in.
func (f *Function) containerSpec(d *device) (*container.Config, *container.HostConfig) {
	port := nat.Port(ADBContainerPort)
	cfg := &container.Config{
		Image:        d.Image,
		Hostname:     "phone-" + shortID(d.ID),
		ExposedPorts: nat.PortSet{port: struct{}{}},
		Labels: map[string]string{
			LabelManaged:  "true",
			LabelDeviceID: d.ID,
			LabelUserID:   d.UserID,
			LabelNodeID:   d.NodeID,
		},
	}
	for k, v := range f.engines.labels {
		cfg.Labels[k] = v
	}
	if f.cfg.Instance != "" {
		cfg.Labels[LabelInstance] = f.cfg.Instance
	}
	pids := f.cfg.PidsLimit
	host := &container.HostConfig{
		PortBindings: nat.PortMap{port: []nat.PortBinding{{HostIP: f.cfg.BindAddress, HostPort: strconv.Itoa(d.ADBPort)}}},
		// The runtime decides about restarts (reconcile), not the engine.
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		NetworkMode:   container.NetworkMode(f.cfg.Network),
		Privileged:    f.privileged(d.Image),
		Resources: container.Resources{
			NanoCPUs: int64(d.CPUCores * 1e9),
			Memory:   d.MemoryMB << 20,
			// No swap: a phone gets the memory it pays for, not twice that
			// on the host's disk.
			MemorySwap: d.MemoryMB << 20,
			PidsLimit:  &pids,
		},
	}
	if !host.Privileged {
		// Privileged mode grants every capability whatever is dropped, so
		// only an unprivileged phone is narrowed down.
		host.CapDrop = []string{"ALL"}
		host.CapAdd = f.caps
		host.SecurityOpt = []string{"no-new-privileges:true"}
	}
	return cfg, host
}

// Options of the phones' bridge network: no traffic between the containers
// on it (the engine drops it in iptables), so one user's phone cannot reach
// another's; the engine already isolates bridge networks from each other.
const networkICCOption = "com.docker.network.bridge.enable_icc"

// ensureNetwork makes sure the phones' network (Config.Network) exists on
// c's engine with inter-container traffic disabled. A network of that name
// that allows it is refused: phones are never put on it.
func (f *Function) ensureNetwork(ctx context.Context, c *client.Client) error {
	f.engines.netMu.Lock()
	defer f.engines.netMu.Unlock()
	name := f.cfg.Network
	for range 2 {
		nw, err := c.NetworkInspect(ctx, name, network.InspectOptions{})
		if err == nil {
			if nw.Driver != "bridge" || nw.Options[networkICCOption] != "false" {
				return fmt.Errorf("network %s on %s is not a bridge with inter-container traffic disabled (%s=false); "+
					"remove it or set DEVICE_NETWORK to another name", name, hostOf(c), networkICCOption)
			}
			return nil
		}
		if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("inspect network %s on %s: %w", name, hostOf(c), err)
		}
		labels := map[string]string{LabelManaged: "true"}
		for k, v := range f.engines.labels {
			labels[k] = v
		}
		if f.cfg.Instance != "" {
			labels[LabelInstance] = f.cfg.Instance
		}
		_, err = c.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "bridge", Options: map[string]string{networkICCOption: "false"}, Labels: labels,
		})
		if err == nil {
			f.log.Info("device-runtime: made the phones' network", "network", name, "docker_host", hostOf(c))
			return nil
		}
		if !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("create network %s on %s: %w", name, hostOf(c), err)
		}
		// Made meanwhile by another runtime of the instance: check it.
	}
	return errBusy{fmt.Errorf("network %s on %s: created and gone again", name, hostOf(c))}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// inspect returns the device's container, or ok false when there is none.
func inspect(ctx context.Context, c *client.Client, deviceID string) (container.InspectResponse, bool, error) {
	ci, err := c.ContainerInspect(ctx, ContainerName(deviceID))
	if cerrdefs.IsNotFound(err) {
		return ci, false, nil
	}
	if err != nil {
		return ci, false, fmt.Errorf("inspect container of device %s on %s: %w", deviceID, hostOf(c), err)
	}
	return ci, true, nil
}

// listManaged lists the engine's phone containers, running or not.
func (e *engines) listManaged(ctx context.Context, c *client.Client) ([]container.Summary, error) {
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: e.managedFilter()})
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", hostOf(c), err)
	}
	mine := list[:0]
	for _, ctr := range list {
		if e.mine(ctr.Labels) {
			mine = append(mine, ctr)
		}
	}
	return mine, nil
}

// removeContainer force-removes the container with its volumes; a missing
// container is fine.
func removeContainer(ctx context.Context, c *client.Client, idOrName string) error {
	err := c.ContainerRemove(ctx, idOrName, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "is already in progress") {
		return fmt.Errorf("remove container %s on %s: %w", idOrName, hostOf(c), err)
	}
	return nil
}

// adbAddr is where d's published ADB port answers: the bind address on a
// local engine, the engine's host on a remote one.
func (f *Function) adbAddr(c *client.Client, port int) string {
	h := f.cfg.BindAddress
	if u, err := url.Parse(c.DaemonHost()); err == nil && (u.Scheme == "tcp" || u.Scheme == "https") && u.Hostname() != "" {
		h = u.Hostname()
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, strconv.Itoa(port))
}

// ADBHandshake opens addr and performs the ADB connection handshake: it
// sends a CNXN message and expects the device's CNXN back, or AUTH from a
// device that wants a key (it is up, too). A plain TCP accept proves
// nothing, since Docker's port proxy accepts while the container does not
// listen.
func ADBHandshake(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := adb.Handshake(ctx, addr); err != nil && !errors.Is(err, adb.ErrAuthRequired) {
		return err
	}
	return nil
}

// waitADB waits until addr answers the ADB handshake, for at most timeout.
func waitADB(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		err := ADBHandshake(ctx, addr, time.Second)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("ADB did not answer on %s within %s: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}
