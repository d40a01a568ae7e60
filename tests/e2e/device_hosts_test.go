package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/adminnodes"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate (for a server at 127.0.0.1, or a client) and
// its key, in PEM.
func (ca testCA) issue(t *testing.T, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "e2e"},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeNodeCerts puts a node's TLS client files where device-runtime looks
// for them: <dir>/<node>/{ca,cert,key}.pem.
func writeNodeCerts(t *testing.T, dir, node string, ca, cert, key []byte) {
	t.Helper()
	d := filepath.Join(dir, node)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"ca.pem": ca, "cert.pem": cert, "key.pem": key} {
		if err := os.WriteFile(filepath.Join(d, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// tlsProxy is a remote Docker engine as a device host runs it: a mutual-TLS
// endpoint (client certificates of one CA only) in front of the local
// engine's socket.
type tlsProxy struct {
	t     *testing.T
	addr  string
	cfg   *tls.Config
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func startTLSProxy(t *testing.T, addr string, cfg *tls.Config) *tlsProxy {
	t.Helper()
	p := &tlsProxy{t: t, addr: addr, cfg: cfg}
	p.listen()
	t.Cleanup(p.close)
	return p
}

func (p *tlsProxy) listen() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port of a closed listener may take a moment to be free
		if ln, err = tls.Listen("tcp", p.addr, p.cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.conns = ln, ln.Addr().String(), map[net.Conn]bool{}
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *tlsProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *tlsProxy) serve(c net.Conn) {
	if !p.track(c) {
		return
	}
	if err := c.(*tls.Conn).Handshake(); err != nil {
		c.Close()
		return
	}
	up, err := net.Dial("unix", "/var/run/docker.sock")
	if err != nil {
		c.Close()
		return
	}
	if !p.track(up) {
		c.Close()
		return
	}
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// close stops listening and drops every connection, as a host that dies.
func (p *tlsProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restart listens again on the same address.
func (p *tlsProxy) restart() { p.listen() }

// nodesByName lists the nodes through the admin API.
func (p devicePlatform) nodesByName(t *testing.T, admin string) map[string]device.Node {
	t.Helper()
	var list adminnodes.List
	if st := call(t, "GET", p.base+"/api/v1/admin/nodes", nil, &list, deviceBearer(admin)...); st != http.StatusOK {
		t.Fatalf("list nodes: %d", st)
	}
	out := map[string]device.Node{}
	for _, n := range list.Nodes {
		out[n.Name] = n
	}
	return out
}

func TestTwoNodesPlaceDrainGoDownComeBackAndTheDrainedOneIsDeleted(t *testing.T) {
	t.Parallel()
	certDir := t.TempDir()
	p, docker := startRuntimePlatform(t, map[string]string{
		"DEVICE_PORT_RANGE":           "26500-26599",
		"DEVICE_DOCKER_CERT_DIR":      certDir,
		"DEVICE_RECONCILE_INTERVAL":   "1s",
		"DEVICE_NODE_HEALTH_INTERVAL": "300ms",
		"DEVICE_NODE_DOWN_AFTER":      "1500ms",
	})
	aliceID, alice := p.deviceToken(t, "alice")
	_, admin := p.deviceToken(t, "admin")
	p.fund(t, aliceID, 1000000)
	grant := userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: "order-hosts-e2e", UserID: aliceID, PlanID: "pro",
		Limits: userevents.Limits{MaxDevices: 5, MaxRunningDevices: 5, MaxCPUCores: 8, MaxMemoryMB: 8192, MaxStorageGB: 64,
			DeviceMaxCPUCores: 2, DeviceMaxMemoryMB: 2048}}
	p.publish(t, userevents.EventQuotaGrantRequested, "/cloudphone/billing/e2e", grant.GrantID, grant)
	eventually(t, 10*time.Second, "the grant never reached alice's quota", func() bool {
		var q user.Quota
		call(t, "GET", p.base+"/api/v1/quotas/me", nil, &q, deviceBearer(alice)...)
		return q.Limits.MaxDevices == 6
	})

	// The remote host: a mutual-TLS proxy to this machine's engine.
	engineCA, otherCA := newTestCA(t, "engine CA"), newTestCA(t, "another CA")
	srvCert, srvKey := engineCA.issue(t, true)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(engineCA.cert)
	proxy := startTLSProxy(t, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: clients,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	remoteHost := "tcp://" + proxy.addr
	goodCert, goodKey := engineCA.issue(t, false)
	writeNodeCerts(t, certDir, "remote", engineCA.pem, goodCert, goodKey)
	wrongCert, wrongKey := otherCA.issue(t, false)
	writeNodeCerts(t, certDir, "wrong", engineCA.pem, wrongCert, wrongKey)

	register := func(name string, want int) (device.Node, apierr.Body) {
		t.Helper()
		var raw struct {
			device.Node
			Error apierr.BodyError `json:"error"`
		}
		st := call(t, "POST", p.base+"/api/v1/admin/nodes", map[string]any{"name": name, "docker_host": remoteHost,
			"adb_host": "127.0.0.1", "cpu_cores": 64, "memory_mb": 262144, "labels": map[string]string{"site": "remote"}},
			&raw, deviceBearer(admin)...)
		if st != want {
			t.Fatalf("register %s: %d, want %d (%+v)", name, st, want, raw.Error)
		}
		return raw.Node, apierr.Body{Error: raw.Error}
	}
	_, refused := register("wrong", http.StatusUnprocessableEntity)
	if !strings.HasPrefix(refused.Error.Message, deviceruntime.CheckTLS+":") {
		t.Fatalf("a client certificate the engine does not trust: %+v", refused.Error)
	}
	_, refused = register("nocerts", http.StatusUnprocessableEntity)
	if !strings.HasPrefix(refused.Error.Message, deviceruntime.CheckTLSMissing+":") {
		t.Fatalf("no TLS files: %+v", refused.Error)
	}
	remote, _ := register("remote", http.StatusCreated)
	if remote.Health != device.NodeUp || remote.Labels["site"] != "remote" {
		t.Fatalf("registered node = %+v", remote)
	}
	local := p.nodesByName(t, admin)["local"]

	// Spread: two phones on each node, all running.
	body := map[string]any{"name": "p", "cpu_cores": 1, "memory_mb": 512}
	var onRemote, onLocal []device.Device
	for range 4 {
		var d device.Device
		if st := call(t, "POST", p.base+"/api/v1/devices", body, &d, deviceBearer(alice)...); st != http.StatusAccepted {
			t.Fatalf("create: %d", st)
		}
		d = p.awaitStateWithin(t, alice, d.ID, device.StateRunning, 30*time.Second)
		if d.NodeID == remote.ID {
			onRemote = append(onRemote, d)
		} else {
			onLocal = append(onLocal, d)
		}
	}
	if len(onRemote) != 2 || len(onLocal) != 2 {
		t.Fatalf("spread placed %d on remote, %d on local", len(onRemote), len(onLocal))
	}
	// Both nodes see every container on the shared engine: a few reconcile
	// passes later none was taken for an orphan.
	time.Sleep(2500 * time.Millisecond)
	for _, d := range append(append([]device.Device{}, onRemote...), onLocal...) {
		ci, ok := phone(t, docker, d.ID)
		if !ok || !ci.State.Running || ci.ID != d.ContainerID || ci.Config.Labels[deviceruntime.LabelNodeID] != d.NodeID {
			t.Fatalf("device %s on %s: container exists=%v running=%v", d.ID, d.NodeName, ok, ok && ci.State.Running)
		}
		p.awaitState(t, alice, d.ID, device.StateRunning)
	}
	// A phone that asks for the remote site's label goes there.
	var labelled device.Device
	if st := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": "p", "cpu_cores": 1, "memory_mb": 512,
		"node_labels": map[string]string{"site": "remote"}}, &labelled, deviceBearer(alice)...); st != http.StatusAccepted || labelled.NodeID != remote.ID {
		t.Fatalf("create asking site=remote: %d on %s", st, labelled.NodeName)
	}
	p.awaitStateWithin(t, alice, labelled.ID, device.StateRunning, 30*time.Second)
	if st := call(t, "DELETE", p.base+"/api/v1/devices/"+labelled.ID, nil, nil, deviceBearer(alice)...); st != http.StatusAccepted {
		t.Fatalf("delete: %d", st)
	}
	p.awaitStateWithin(t, alice, labelled.ID, device.StateDeleted, 30*time.Second)

	// Draining: new phones go elsewhere; a node with phones cannot go.
	var n device.Node
	if st := call(t, "PUT", p.base+"/api/v1/admin/nodes/"+remote.ID, map[string]any{"status": "draining"}, &n,
		deviceBearer(admin)...); st != http.StatusOK || n.Status != device.NodeDraining {
		t.Fatalf("drain: %d %+v", st, n)
	}
	var d5 device.Device
	if st := call(t, "POST", p.base+"/api/v1/devices", body, &d5, deviceBearer(alice)...); st != http.StatusAccepted || d5.NodeID != local.ID {
		t.Fatalf("create while remote drains: %d on %s", st, d5.NodeName)
	}
	p.awaitStateWithin(t, alice, d5.ID, device.StateRunning, 30*time.Second)
	if st := call(t, "DELETE", p.base+"/api/v1/admin/nodes/"+remote.ID, nil, nil, deviceBearer(admin)...); st != http.StatusConflict {
		t.Fatalf("delete a node with phones: %d", st)
	}

	// The host dies: the node goes down and its phones to error, node_down.
	proxy.close()
	killed := time.Now()
	for _, d := range onRemote {
		got := p.awaitStateWithin(t, alice, d.ID, device.StateError, 20*time.Second)
		if got.LastError != device.ReasonNodeDown {
			t.Fatalf("device %s on the dead node: error %q", d.ID, got.LastError)
		}
	}
	t.Logf("host killed → its phones in error in %s", time.Since(killed).Round(time.Millisecond))
	if got := p.nodesByName(t, admin)["remote"]; got.Health != device.NodeDown || got.HealthError == "" {
		t.Fatalf("dead node = %+v", got)
	}
	for _, d := range onLocal {
		p.awaitState(t, alice, d.ID, device.StateRunning)
	}
	if u := p.usage(t, alice); u.Devices != 5 {
		t.Fatalf("usage while the node is down = %+v", u)
	}

	// It comes back: the same containers run again, none recreated.
	proxy.restart()
	back := time.Now()
	for _, d := range onRemote {
		got := p.awaitStateWithin(t, alice, d.ID, device.StateRunning, 30*time.Second)
		if got.ContainerID != d.ContainerID {
			t.Fatalf("device %s came back in container %s, was %s", d.ID, got.ContainerID, d.ContainerID)
		}
	}
	t.Logf("host back → its phones running in %s", time.Since(back).Round(time.Millisecond))
	// The phones can be seen running again (a reconcile pass or the events
	// watch reaching the engine) a health tick before the node is marked up.
	eventually(t, 10*time.Second, "the node never came back up", func() bool {
		return p.nodesByName(t, admin)["remote"].Health == device.NodeUp
	})

	// Stop its phones, move them off and delete the drained node.
	for _, d := range onRemote {
		if st := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/stop", nil, nil, deviceBearer(alice)...); st != http.StatusAccepted {
			t.Fatalf("stop: %d", st)
		}
		p.awaitStateWithin(t, alice, d.ID, device.StateStopped, 30*time.Second)
	}
	if st := call(t, "PUT", p.base+"/api/v1/admin/nodes/"+remote.ID, map[string]any{"move_stopped": true}, &n,
		deviceBearer(admin)...); st != http.StatusOK || n.MovedDevices != 2 || n.Devices != 0 {
		t.Fatalf("move stopped phones: %d %+v", st, n)
	}
	if st := call(t, "DELETE", p.base+"/api/v1/admin/nodes/"+remote.ID, nil, nil, deviceBearer(admin)...); st != http.StatusNoContent {
		t.Fatalf("delete the drained node: %d", st)
	}
	if _, ok := p.nodesByName(t, admin)["remote"]; ok {
		t.Fatal("the deleted node is still listed")
	}
	moved := onRemote[0]
	if st := call(t, "POST", p.base+"/api/v1/devices/"+moved.ID+"/start", nil, nil, deviceBearer(alice)...); st != http.StatusAccepted {
		t.Fatalf("start a moved phone: %d", st)
	}
	got := p.awaitStateWithin(t, alice, moved.ID, device.StateRunning, 30*time.Second)
	ci, ok := phone(t, docker, moved.ID)
	if got.NodeID != local.ID || !ok || ci.ID != got.ContainerID || ci.Config.Labels[deviceruntime.LabelNodeID] != local.ID {
		t.Fatalf("moved phone runs on %s, container on node %v", got.NodeName, ci.Config.Labels[deviceruntime.LabelNodeID])
	}
}
