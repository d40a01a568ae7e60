package deviceruntime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	devicecontext "github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
)

// What CheckEngine found wrong: the first word of its error's message, so
// that a caller can tell the failures apart.
const (
	CheckDockerHost  = "docker_host_invalid"  // not unix:///path or tcp://host:port
	CheckTLSMissing  = "tls_material_missing" // tcp:// without ca.pem, cert.pem and key.pem
	CheckTLSInvalid  = "tls_material_invalid" // the files cannot be read or parsed
	CheckTLS         = "engine_tls_failed"    // the TLS handshake failed (wrong CA or certificate)
	CheckUnreachable = "engine_unreachable"   // no answer from the engine
	CheckAPIVersion  = "engine_api_too_old"   // the engine's API is older than MinAPIVersion
)

// MinAPIVersion is the oldest Docker engine API a node may have (Docker
// 20.10).
const MinAPIVersion = "1.41"

// CheckEngine checks the Docker engine of node name at dockerHost before it
// is registered: a tcp:// engine needs TLS client files (ca.pem, cert.pem
// and key.pem in <TLSCertDir>/<name>/, else the DEVICE_DOCKER_TLS_* files),
// and the engine must answer (over TLS for tcp://) with API version
// MinAPIVersion or later. A failure is apierr Unprocessable whose message
// starts with one of the Check* codes.
func CheckEngine(ctx context.Context, cfg Config, name, dockerHost string) error {
	fail := func(code string, cause error, format string, args ...any) error {
		return apierr.Wrap(apierr.Unprocessable, cause, code+": "+format, args...)
	}
	opts := []client.Opt{client.WithHost(dockerHost), client.WithAPIVersionNegotiation()}
	switch {
	case strings.HasPrefix(dockerHost, "unix:///"):
	case strings.HasPrefix(dockerHost, "tcp://"):
		ca, cert, key := tlsMaterial(cfg, name, "")
		if ca == "" || cert == "" || key == "" {
			return fail(CheckTLSMissing, nil, "no TLS client files for %s: put ca.pem, cert.pem and key.pem in DEVICE_DOCKER_CERT_DIR/%s/ "+
				"(or set DEVICE_DOCKER_TLS_CA, _CERT and _KEY)", dockerHost, name)
		}
		opts = append(opts, client.WithTLSClientConfig(ca, cert, key))
	default:
		return fail(CheckDockerHost, nil, "%q is neither unix:///path nor tcp://host:port", dockerHost)
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return fail(CheckTLSInvalid, err, "the TLS client files for %s cannot be used: %v", dockerHost, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.ServerVersion(ctx)
	switch {
	case err != nil && tlsFailure(err):
		return fail(CheckTLS, err, "the TLS handshake with %s failed (is the node's certificate signed by the CA the engine trusts, "+
			"and the engine's by ca.pem?): %v", dockerHost, err)
	case err != nil:
		return fail(CheckUnreachable, err, "the Docker engine at %s does not answer: %v", dockerHost, err)
	case versions.LessThan(v.APIVersion, MinAPIVersion):
		return fail(CheckAPIVersion, nil, "the Docker engine at %s speaks API %s; %s or later is needed", dockerHost, v.APIVersion, MinAPIVersion)
	}
	return nil
}

// tlsFailure reports whether err comes from a failed TLS handshake.
func tlsFailure(err error) bool {
	var (
		unknownCA  x509.UnknownAuthorityError
		invalid    x509.CertificateInvalidError
		hostname   x509.HostnameError
		alert      tls.AlertError
		verify     *tls.CertificateVerificationError
		recordHead tls.RecordHeaderError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &alert) ||
		errors.As(err, &verify) || errors.As(err, &recordHead) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:")
}

// tlsMaterial returns the TLS client files of a node: those in
// <TLSCertDir>/<id>/ or <TLSCertDir>/<name>/ when that directory has all
// three, else the configured files.
func tlsMaterial(cfg Config, name, id string) (ca, cert, key string) {
	if cfg.TLSCertDir != "" {
		for _, sub := range []string{id, name} {
			if sub == "" || filepath.Base(sub) != sub || sub == "." || sub == ".." {
				continue
			}
			dir := filepath.Join(cfg.TLSCertDir, sub)
			files := []string{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
			if allExist(files) {
				return files[0], files[1], files[2]
			}
		}
	}
	return cfg.TLSCA, cfg.TLSCert, cfg.TLSKey
}

func allExist(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// nodeRef is a registered node as the runtime knows it.
type nodeRef struct {
	ID, Name, DockerHost, Health string
}

// loadNodes reads the registered nodes (deleted ones left out) and hands
// them to the engines.
func (f *Function) loadNodes(ctx context.Context) ([]nodeRef, error) {
	rows, err := f.pool.Query(ctx, `SELECT id::text, name, docker_host, health FROM nodes WHERE deleted_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (nodeRef, error) {
		var n nodeRef
		err := r.Scan(&n.ID, &n.Name, &n.DockerHost, &n.Health)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	f.engines.setNodes(out)
	return out, nil
}

// nodeMetrics are the per-node collectors (see WithMetrics).
type nodeMetrics struct {
	up      *prometheus.GaugeVec
	devices *prometheus.GaugeVec
	ping    *prometheus.GaugeVec
}

// newNodeMetrics registers the per-node metrics on reg:
// cloudphone_device_node_up (1 while the node's engine answers),
// cloudphone_device_node_devices (devices the runtime keeps on the node)
// and cloudphone_device_node_ping_seconds (the last answer's time), each by
// node name.
func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cloudphone_device_node_up", Help: "1 while the device host's Docker engine answers, by node.",
		}, []string{"node"}),
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cloudphone_device_node_devices", Help: "Devices device-runtime keeps on the device host, by node.",
		}, []string{"node"}),
		ping: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cloudphone_device_node_ping_seconds", Help: "Time of the last answer of the device host's Docker engine, by node.",
		}, []string{"node"}),
	}
	for _, c := range []*prometheus.GaugeVec{m.up, m.devices, m.ping} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
	return m
}

// nodeHealth is the health loop's memory: since when each failing node's
// engine has not answered.
type nodeHealth struct {
	failingSince map[string]time.Time
	named        map[string]string // node id → name in the metrics
}

func (f *Function) healthLoop(ctx context.Context) {
	h := &nodeHealth{failingSince: map[string]time.Time{}, named: map[string]string{}}
	t := time.NewTicker(f.cfg.NodeHealthInterval)
	defer t.Stop()
	for {
		if err := f.checkNodes(ctx, h); err != nil && ctx.Err() == nil {
			f.log.Error("device-runtime: node health check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkNodes pings every node's engine once: a node whose engine has failed
// for NodeDownAfter is marked down (and its running devices reported
// crashed, reason node_down); a down node that answers is marked up and a
// reconcile pass brings its devices back.
func (f *Function) checkNodes(ctx context.Context, h *nodeHealth) error {
	nodes, err := f.loadNodes(ctx)
	if err != nil {
		return err
	}
	type result struct {
		took time.Duration
		err  error
	}
	results := make([]result, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			// Generous beside a short interval: a slow answer is not down.
			pctx, cancel := context.WithTimeout(ctx, min(max(f.cfg.NodeHealthInterval, 2*time.Second), 5*time.Second))
			defer cancel()
			start := time.Now()
			c, err := f.engines.client(n.DockerHost, n.ID)
			if err == nil {
				_, err = c.Ping(pctx)
			}
			results[i] = result{time.Since(start), err}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.nodeMetricsUpdate(ctx, nodes, h)
	now := time.Now()
	for i, n := range nodes {
		r := results[i]
		if f.nodeMetrics != nil {
			up := 0.0
			if r.err == nil {
				up = 1
				f.nodeMetrics.ping.WithLabelValues(n.Name).Set(r.took.Seconds())
			}
			f.nodeMetrics.up.WithLabelValues(n.Name).Set(up)
		}
		if r.err == nil {
			delete(h.failingSince, n.ID)
			if n.Health == devicecontext.NodeDown {
				if err := f.nodeUp(ctx, n); err != nil {
					return err
				}
			}
			continue
		}
		since, ok := h.failingSince[n.ID]
		if !ok {
			since = now
			h.failingSince[n.ID] = now
			f.log.Warn("device-runtime: a node's Docker engine does not answer", "node", n.Name, "docker_host", n.DockerHost, "err", r.err)
		}
		if n.Health != devicecontext.NodeDown && now.Sub(since) >= f.cfg.NodeDownAfter {
			if err := f.nodeDown(ctx, n, r.err); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodeMetricsUpdate sets the device counts and forgets the metrics of nodes
// no longer registered.
func (f *Function) nodeMetricsUpdate(ctx context.Context, nodes []nodeRef, h *nodeHealth) {
	if f.nodeMetrics == nil {
		return
	}
	counts := map[string]int{}
	rows, err := f.pool.Query(ctx, `SELECT node_id, count(*) FROM runtime_devices WHERE desired <> 'deleted' GROUP BY node_id`)
	if err == nil {
		for rows.Next() {
			var id string
			var n int
			if rows.Scan(&id, &n) == nil {
				counts[id] = n
			}
		}
		rows.Close()
	}
	live := map[string]bool{}
	for _, n := range nodes {
		live[n.ID] = true
		h.named[n.ID] = n.Name
		f.nodeMetrics.devices.WithLabelValues(n.Name).Set(float64(counts[n.ID]))
	}
	for id, name := range h.named {
		if !live[id] {
			f.nodeMetrics.up.DeleteLabelValues(name)
			f.nodeMetrics.devices.DeleteLabelValues(name)
			f.nodeMetrics.ping.DeleteLabelValues(name)
			delete(h.named, id)
			delete(h.failingSince, id)
		}
	}
}

// nodeDown marks n down and reports each of its devices that should run
// and ran crashed with reason node_down (the device context puts them in
// error). Devices with a command queued are left to it.
func (f *Function) nodeDown(ctx context.Context, n nodeRef, cause error) error {
	msg := cause.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	tag, err := f.pool.Exec(ctx, `UPDATE nodes SET health = 'down', health_error = $2, health_changed_at = now(), updated_at = now()
		WHERE id = $1 AND health = 'up'`, n.ID, msg)
	if err != nil {
		return fmt.Errorf("mark node %s down: %w", n.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	f.log.Warn("device-runtime: node down", "node", n.Name, "docker_host", n.DockerHost, "down_after", f.cfg.NodeDownAfter.String(), "err", msg)
	rows, err := f.pool.Query(ctx, `SELECT device_id FROM runtime_devices WHERE node_id = $1 AND desired = 'running' AND observed = 'running'`, n.ID)
	if err != nil {
		return fmt.Errorf("devices of node %s: %w", n.Name, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("devices of node %s: %w", n.Name, err)
	}
	for _, id := range ids {
		var published findingBatch
		err := db.WithTx(ctx, f.pool, func(tx pgx.Tx) error {
			d, locked, err := tryLockDevice(ctx, tx, id)
			if err != nil || !locked || d == nil || d.NodeID != n.ID || d.Desired != desiredRunning || d.Observed != observedRunning {
				return err
			}
			busy, err := pendingDevices(ctx, tx, id)
			if err != nil || busy[id] {
				return err
			}
			d.Observed = observedCrashed
			if err := d.save(ctx, tx); err != nil {
				return err
			}
			published, err = emit(ctx, tx, []finding{newFinding(deviceevents.EventRuntimeCrashed, d, OpWatch, devicecontext.ReasonNodeDown, nil)})
			return err
		})
		if err != nil {
			return fmt.Errorf("report device %s of node %s down: %w", id, n.Name, err)
		}
		f.published(published)
	}
	return nil
}

// nodeUp marks n up again and asks for a reconcile pass, which finds its
// devices' containers running (reported started again) or recreates them.
func (f *Function) nodeUp(ctx context.Context, n nodeRef) error {
	_, err := f.pool.Exec(ctx, `UPDATE nodes SET health = 'up', health_error = '', health_changed_at = now(), updated_at = now()
		WHERE id = $1 AND health = 'down'`, n.ID)
	if err != nil {
		return fmt.Errorf("mark node %s up: %w", n.Name, err)
	}
	f.log.Info("device-runtime: node up again", "node", n.Name, "docker_host", n.DockerHost)
	f.requestReconcile()
	return nil
}
