// Package rehearse runs the platform on the local Docker engine the way a
// cluster runs it, to prove the deployable units work apart: one container
// per unit of stack.yml (each context's bundle, device-runtime's, the ADB
// gateway's, and the broker, infra/cmd/broker), each from its own image with
// only the environment and secret files its descriptor declares (secrets
// mounted as OpenFaaS mounts them, /var/openfaas/secrets/<name>), on a
// network of their own. A gateway in this process plays OpenFaaS' gateway:
// the units reach each other and the broker through it
// (http://gateway.openfaas:8080, as stack.yml says), the broker delivers
// through it by the Trigger files built into its image, and it answers the
// public API. Postgres, Redis, the S3-compatible store and the SMTP server
// of the host are reached over the network (a server listening on loopback
// only is forwarded from the network's gateway address). Every container and
// network it makes carries LabelRehearsal and LabelRun, and Down removes
// those and nothing else.
package rehearse

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-units"

	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Labels put on everything the rehearsal makes: LabelRehearsal=1 and
// LabelRun=<Options.Run>.
const (
	LabelRehearsal = "cloudphone.rehearsal"
	LabelRun       = "cloudphone.rehearsal.run"
)

// DefaultAddr is where the rehearsal answers unless told otherwise.
const DefaultAddr = "127.0.0.1:8090"

const (
	brokerUnit  = "cloudphone-broker"
	runtimeUnit = "cloudphone-device-runtime"
	userUnit    = "cloudphone-user"
	// gatewayHost is the gateway's name in stack.yml's URLs.
	gatewayHost = "gateway.openfaas"
	secretsDir  = "/var/openfaas/secrets"
	dockerSock  = "/var/run/docker.sock"
)

// Options describe a rehearsal.
type Options struct {
	// Root is the repository root: stack.yml and the sources of the images.
	Root string
	// Run names the rehearsal among others on the engine: its containers
	// are <Run>-<unit>, its network <Run>. Default "rehearsal".
	Run string
	// Addr is where the gateway answers the public API; default DefaultAddr.
	Addr string
	// Tag is the images' tag; empty, the one stack.yml names.
	Tag string
	// Build builds the images first (BuildImages).
	Build bool
	// BinDir, when set, keeps the binaries Build makes (bin/function and
	// bin/broker of `make build`).
	BinDir string
	// Host is the host side: DATABASE_URL, REDIS_URL, S3_*, SMTP_URL as the
	// host reaches them. Loopback servers are forwarded to the containers.
	Host map[string]string
	// Settings are deployment settings given to every bundle besides what
	// its descriptor declares, as an operator adds them (the phone image,
	// the ADB addresses, a database prefix); the rehearsal adds the ADB
	// addresses and the phones' labels itself.
	Settings map[string]string
	// AdminPassword is the admin account's; empty, one is made and logged.
	AdminPassword string
	// StateDir keeps the secret files the containers mount; default a
	// directory under the system's temporary one.
	StateDir string
	Log      *slog.Logger
}

// Rehearsal is a running rehearsal.
type Rehearsal struct {
	opts       Options
	cli        *client.Client
	log        *slog.Logger
	units      []Unit
	netName    string
	gatewayIP  string
	forwarders []*forwarder
	servers    []*http.Server
	url        string
	hostEnv    map[string]string
	stateDir   string
	ownState   bool
	front      *front
	startMu    sync.Mutex
}

// Up builds (when asked), starts every unit and the gateway, and returns
// once every unit answers ready. On failure it removes what it made.
func Up(ctx context.Context, opts Options) (_ *Rehearsal, err error) {
	if opts.Run == "" {
		opts.Run = "rehearsal"
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	r := &Rehearsal{opts: opts, cli: cli, log: opts.Log, netName: opts.Run}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close(context.Background()))
		}
	}()
	if r.units, err = ReadStack(filepath.Join(opts.Root, "stack.yml")); err != nil {
		return nil, err
	}
	if opts.Build {
		started := time.Now()
		if err := BuildImages(ctx, cli, opts.Root, opts.Tag, opts.BinDir, r.units); err != nil {
			return nil, err
		}
		r.log.Info("images built", "ms", time.Since(started).Milliseconds())
	}
	if err := Down(ctx, cli, opts.Run); err != nil { // what a crashed run left
		return nil, err
	}
	labels := r.labels()
	nw, err := cli.NetworkCreate(ctx, r.netName, network.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		return nil, fmt.Errorf("create network %s: %w", r.netName, err)
	}
	ins, err := cli.NetworkInspect(ctx, nw.ID, network.InspectOptions{})
	if err != nil {
		return nil, err
	}
	for _, c := range ins.IPAM.Config {
		if ip := net.ParseIP(c.Gateway); ip != nil && ip.To4() != nil {
			r.gatewayIP = c.Gateway
		}
	}
	if r.gatewayIP == "" {
		return nil, fmt.Errorf("network %s has no IPv4 gateway", r.netName)
	}
	r.stateDir, r.ownState = opts.StateDir, opts.StateDir == ""
	if r.ownState {
		if r.stateDir, err = os.MkdirTemp("", "rehearsal-"); err != nil {
			return nil, err
		}
	}
	host, err := r.reachable(opts.Host)
	if err != nil {
		return nil, err
	}
	secrets, hostEnv, err := r.secrets(host)
	if err != nil {
		return nil, err
	}
	r.hostEnv = hostEnv

	// The gateway: on the network's gateway address, where the units reach
	// it as gateway.openfaas:8080, and on Addr for the public.
	r.front = newFront(r.units, r.log.With("component", "gateway"), r.address, r.wake)
	for _, addr := range []string{net.JoinHostPort(r.gatewayIP, "8080"), opts.Addr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		srv := &http.Server{Handler: r.front, ReadHeaderTimeout: 10 * time.Second}
		r.servers = append(r.servers, srv)
		go func() { _ = srv.Serve(ln) }()
		r.url = "http://" + ln.Addr().String()
	}

	for _, u := range r.units {
		if err := r.create(ctx, u, secrets); err != nil {
			return nil, err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(r.units))
	for i, u := range r.units {
		wg.Go(func() {
			if err := r.cli.ContainerStart(ctx, r.Container(u.Name), container.StartOptions{}); err != nil {
				errs[i] = fmt.Errorf("start %s: %w", u.Name, err)
				return
			}
			if _, err := r.ready(ctx, u.Name, 2*time.Minute); err != nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := r.bootstrap(ctx, hostEnv); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rehearsal) labels() map[string]string {
	return map[string]string{LabelRehearsal: "1", LabelRun: r.opts.Run}
}

// URL is where the gateway answers the public API.
func (r *Rehearsal) URL() string { return r.url }

// GatewayIP is the rehearsal network's gateway address: where the units
// reach the host (host.docker.internal) and where phones publish ADB.
func (r *Rehearsal) GatewayIP() string { return r.gatewayIP }

// Units are the units run, in name order.
func (r *Rehearsal) Units() []Unit { return r.units }

// Container is the container name of the unit called unit.
func (r *Rehearsal) Container(unit string) string { return r.opts.Run + "-" + unit }

// HostEnv is the units' configuration as a process on the host reads it:
// the host's server URLs, the Settings and the token keys the units were
// given (to run a unit's binary as a plain process, or to sign events).
func (r *Rehearsal) HostEnv() map[string]string { return maps.Clone(r.hostEnv) }

// Docker is the engine's client.
func (r *Rehearsal) Docker() *client.Client { return r.cli }

// reachable rewrites the host's server URLs for the containers: a server on
// loopback is forwarded from the network's gateway address (same port) and
// named host.docker.internal.
func (r *Rehearsal) reachable(host map[string]string) (map[string]string, error) {
	out := maps.Clone(host)
	if out == nil {
		out = map[string]string{}
	}
	forwarded := map[string]bool{}
	for _, k := range []string{"DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "SMTP_URL"} {
		raw := out[k]
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		h, port := u.Hostname(), u.Port()
		if ip := net.ParseIP(h); !(h == "localhost" || (ip != nil && ip.IsLoopback())) || port == "" {
			continue
		}
		if !forwarded[port] {
			f, err := forward(net.JoinHostPort(r.gatewayIP, port), net.JoinHostPort(h, port))
			if err != nil {
				return nil, fmt.Errorf("forward %s to the containers: %w", k, err)
			}
			r.forwarders = append(r.forwarders, f)
			forwarded[port] = true
		}
		u.Host = net.JoinHostPort("host.docker.internal", port)
		out[k] = u.String()
	}
	return out, nil
}

// secrets are the values of every secret a unit may declare, by name, and
// the host-side environment with the same keys (for the admin account).
func (r *Rehearsal) secrets(host map[string]string) (map[string]string, map[string]string, error) {
	key := func() (string, string) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		return base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub)
	}
	svcKey, svcPub := key()
	userKey, userPub := key()
	webhook := make([]byte, 32)
	_, _ = rand.Read(webhook)
	s := map[string]string{
		"database-url":             host["DATABASE_URL"],
		"redis-url":                host["REDIS_URL"],
		"s3-endpoint":              host["S3_ENDPOINT"],
		"s3-access-key-id":         host["S3_ACCESS_KEY_ID"],
		"s3-secret-access-key":     host["S3_SECRET_ACCESS_KEY"],
		"smtp-url":                 host["SMTP_URL"],
		"service-token-key":        svcKey,
		"service-token-public-key": svcPub,
		"user-token-key":           userKey,
		"user-token-public-key":    userPub,
		"payment-webhook-secret":   base64.RawURLEncoding.EncodeToString(webhook),
	}
	hostEnv := maps.Clone(r.opts.Host)
	if hostEnv == nil {
		hostEnv = map[string]string{}
	}
	maps.Copy(hostEnv, r.opts.Settings)
	hostEnv["CLOUDPHONE_SERVICE_TOKEN_KEY"], hostEnv["CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY"] = svcKey, svcPub
	hostEnv["CLOUDPHONE_USER_TOKEN_KEY"], hostEnv["CLOUDPHONE_USER_TOKEN_PUBLIC_KEY"] = userKey, userPub
	return s, hostEnv, nil
}

// settings are what a unit gets besides its descriptor's environment.
func (r *Rehearsal) settings(u Unit) []string {
	env := maps.Clone(u.Environment)
	maps.Copy(env, r.opts.Settings)
	// Phones publish ADB on the network's gateway address, where
	// device-runtime and the ADB gateway reach them, and carry the labels
	// Down removes them by.
	env["DEVICE_ADB_BIND_ADDRESS"] = r.gatewayIP
	env["DEVICE_NODE_ADB_HOST"] = r.gatewayIP
	env["DEVICE_CONTAINER_LABELS"] = LabelRehearsal + "=1," + LabelRun + "=" + r.opts.Run
	// Every request reaches a unit through the gateway, from the network's
	// gateway address: the units take the client's address from the
	// gateway's X-Forwarded-For, as behind OpenFaaS' gateway, or one busy
	// client's rate-limit refusals would ban everybody's address.
	if env["CLOUDPHONE_TRUSTED_PROXIES"] == "" {
		env["CLOUDPHONE_TRUSTED_PROXIES"] = r.gatewayIP
	}
	if env["DEVICE_NETWORK"] == "" {
		env["DEVICE_NETWORK"] = r.opts.Run + "-phones"
	}
	for _, k := range []string{"S3_BUCKET", "S3_REGION"} {
		if v := r.opts.Host[k]; v != "" && env[k] == "" {
			env[k] = v
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// create makes u's container: its image, its environment, its declared
// secrets as files, the descriptor's limits and read-only root, on the
// network under the unit's name.
func (r *Rehearsal) create(ctx context.Context, u Unit, values map[string]string) error {
	dir := filepath.Join(r.stateDir, u.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range u.Secrets {
		v, ok := values[name]
		if !ok || v == "" {
			continue // not given to this rehearsal (an optional secret)
		}
		// World-readable inside a directory only this rehearsal made: the
		// units run as an unprivileged user, as OpenFaaS' secret files are
		// readable by the function's.
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o444); err != nil {
			return err
		}
	}
	labels := r.labels()
	maps.Copy(labels, u.Labels)
	hc := &container.HostConfig{
		Mounts:         []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: secretsDir, ReadOnly: true}},
		ReadonlyRootfs: u.ReadOnlyRootFilesystem,
		NetworkMode:    container.NetworkMode(r.netName),
		// A unit that crashes is started again, as an orchestrator keeps
		// its replicas; one stopped (scaled to zero) stays stopped until a
		// request for it wakes it.
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		ExtraHosts:    []string{gatewayHost + ":" + r.gatewayIP, "host.docker.internal:" + r.gatewayIP},
	}
	if u.ReadOnlyRootFilesystem {
		// OpenFaaS leaves /tmp writable under a read-only root.
		hc.Tmpfs = map[string]string{"/tmp": "rw,size=256m"}
	}
	if u.Limits != nil {
		if u.Limits.Memory != "" {
			if b, err := units.RAMInBytes(strings.TrimSuffix(u.Limits.Memory, "i")); err == nil {
				hc.Memory = b
			}
		}
		if cpu, ok := strings.CutSuffix(u.Limits.CPU, "m"); ok {
			if m, err := strconv.ParseInt(cpu, 10, 64); err == nil {
				hc.NanoCPUs = m * 1_000_000
			}
		}
	}
	if u.Name == runtimeUnit {
		// device-runtime owns the phones' containers: the engine's socket,
		// readable by its unprivileged user through the socket's group.
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: dockerSock, Target: dockerSock})
		if gid, ok := socketGroup(dockerSock); ok {
			hc.GroupAdd = []string{strconv.Itoa(gid)}
		}
	}
	_, err := r.cli.ContainerCreate(ctx, &container.Config{
		Image:  imageRef(u.Image, r.opts.Tag),
		Env:    r.settings(u),
		Labels: labels,
	}, hc, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		r.netName: {Aliases: []string{u.Name}},
	}}, nil, r.Container(u.Name))
	if err != nil {
		return fmt.Errorf("create %s: %w", u.Name, err)
	}
	return nil
}

// address is where the unit's container answers now, or an error when it
// is not running.
func (r *Rehearsal) address(ctx context.Context, unit string) (string, error) {
	c, err := r.cli.ContainerInspect(ctx, r.Container(unit))
	if err != nil {
		return "", err
	}
	if c.State == nil || !c.State.Running {
		return "", fmt.Errorf("%s is not running", unit)
	}
	ep := c.NetworkSettings.Networks[r.netName]
	if ep == nil || ep.IPAddress == "" {
		return "", fmt.Errorf("%s has no address on %s", unit, r.netName)
	}
	return net.JoinHostPort(ep.IPAddress, "8080"), nil
}

// wake starts the unit's container when it is not running and waits until
// it is ready.
func (r *Rehearsal) wake(ctx context.Context, unit string) (string, error) {
	if _, err := r.address(ctx, unit); err != nil {
		r.log.Info("starting a stopped unit for a request", "unit", unit)
		if err := r.cli.ContainerStart(ctx, r.Container(unit), container.StartOptions{}); err != nil {
			return "", err
		}
	}
	return r.ready(ctx, unit, time.Minute)
}

// ready waits until the unit's readiness answers 200 and returns its address.
func (r *Rehearsal) ready(ctx context.Context, unit string, within time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		addr, err := r.address(ctx, unit)
		if err == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/_/health", nil)
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return addr, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s not ready within %s: %w (logs: docker logs %s)", unit, within, err, r.Container(unit))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Ready waits until the unit answers ready (after a start or restart).
func (r *Rehearsal) Ready(ctx context.Context, unit string) error {
	_, err := r.ready(ctx, unit, 2*time.Minute)
	return err
}

// bootstrap makes the admin account, as an operator does once after the
// first deployment.
func (r *Rehearsal) bootstrap(ctx context.Context, hostEnv map[string]string) error {
	res, err := process.New(config.FromMap(hostEnv), r.log, nil, nil)
	if err != nil {
		return err
	}
	defer res.Close()
	return userfunctions.Bootstrap(os.Stdout)(ctx, res, r.opts.AdminPassword)
}

// Close stops the gateway and the forwarders and removes everything the
// rehearsal made (Down).
func (r *Rehearsal) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for _, s := range r.servers {
		_ = s.Close()
	}
	errs = append(errs, Down(ctx, r.cli, r.opts.Run))
	for _, f := range r.forwarders {
		errs = append(errs, f.Close())
	}
	if r.ownState && r.stateDir != "" {
		errs = append(errs, os.RemoveAll(r.stateDir))
	}
	errs = append(errs, r.cli.Close())
	return errors.Join(errs...)
}

// Down removes every container (the units and the phones device-runtime
// made) and network labelled with run, and nothing else.
func Down(ctx context.Context, cli *client.Client, run string) error {
	f := filters.NewArgs(filters.Arg("label", LabelRehearsal+"=1"), filters.Arg("label", LabelRun+"="+run))
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, err)
		}
	}
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, n := range nets {
		if err := cli.NetworkRemove(ctx, n.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
