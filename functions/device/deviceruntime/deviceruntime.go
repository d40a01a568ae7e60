// Package deviceruntime is the device-runtime function: the long-running
// process that owns the Docker engines of the device hosts and turns device
// commands into phone containers.
//
// It consumes the device context's commands (cloudphone.device.<op>.requested,
// op ∈ create|start|stop|restart|delete, and
// cloudphone.device.app.install|uninstall.requested), acknowledges each at once after
// recording it durably in its own queue (table runtime_commands in the device
// context's database), and works through that queue with a few workers: one
// command per device at a time, in the order received, each in a transaction
// that holds the command's row lock while the Docker calls run and commits
// the command's completion, the device's runtime state (table
// runtime_devices) and the outcome reports (outbox) together. A process that
// dies mid-command leaves the command pending; the next one redoes it, and
// every Docker step is idempotent (the container's name is the device's).
//
// Every outcome is reported as cloudphone.device.runtime.<what> (created,
// started, stopped, restarted, removed, failed, crashed) through the outbox;
// app commands as cloudphone.app.installed, install_failed or uninstalled.
// An install downloads the APK from its presigned URL while pushing it to
// the phone over ADB and hashing it, checks size and SHA-256, runs `pm
// install` and checks `pm list packages`; a runtime that dies mid-install
// leaves the command pending, and the next one installs again from the
// start (pm install -r of the same APK changes nothing more).
// A Docker events watch reports a container that dies without being told to
// as crashed within seconds, and a reconcile loop (every 30 s) compares the
// desired state in runtime_devices with the engines' containers: a device
// that should run but whose container is missing, stopped or not answering
// on its ADB port is reported crashed and recreated once; a managed container
// with no device (or a deleted one) is removed. Each engine's containers are
// matched by their node and instance labels, so two nodes that share one
// engine never take each other's containers for orphans.
//
// A health loop pings every registered node's engine (every 10 s): one that
// has not answered for DEVICE_NODE_DOWN_AFTER marks its node down and has
// the node's running devices reported crashed with reason node_down; when
// it answers again the node is up and a reconcile pass reports the devices
// whose containers still run started again (or recreates the others once).
//
// Desired state is the runtime's own: runtime_devices is fed only by the
// commands received (the last command of a device says what it should be), so
// the runtime works the same whether it shares a process with the device
// context or not. The one table of the context it uses is nodes: it refuses
// an engine that is not a registered node's (see admit) and keeps the
// nodes' health.
package deviceruntime

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime/migrations"
)

// Name is the function's name in the catalog; Source is the source of the
// events it emits.
const (
	Name   = "device-runtime"
	Source = "/cloudphone/device/device-runtime"
)

// Database is the database the runtime's tables live in: the device
// context's, to which device-runtime belongs.
const Database = "cloudphone_device"

// The commands the runtime consumes and the reports and app facts it emits
// are declared once, in the device context's contract (deviceevents).

// Consumes are the command types, in the order of the ops.
var Consumes = []string{deviceevents.EventCreateRequested, deviceevents.EventStartRequested, deviceevents.EventStopRequested, deviceevents.EventRestartRequested, deviceevents.EventDeleteRequested,
	deviceevents.EventAppInstallRequested, deviceevents.EventAppUninstallRequested}

// Emits are the report types and the app facts.
var Emits = append([]string{deviceevents.EventRuntimeCreated, deviceevents.EventRuntimeStarted, deviceevents.EventRuntimeStopped, deviceevents.EventRuntimeRestarted, deviceevents.EventRuntimeRemoved, deviceevents.EventRuntimeFailed, deviceevents.EventRuntimeCrashed},
	deviceevents.AppFacts...)

// Ops of the commands: the contract's, and the app commands'.
const (
	OpCreate  = deviceevents.OpCreate
	OpStart   = deviceevents.OpStart
	OpStop    = deviceevents.OpStop
	OpRestart = deviceevents.OpRestart
	OpDelete  = deviceevents.OpDelete
	// OpInstall and OpUninstall are the app commands: they change no
	// container, only what is installed on a running phone.
	OpInstall   = "install"
	OpUninstall = "uninstall"
	// OpRecreate names, in reports, the reconcile loop's recreation of a
	// crashed device's container; OpReconcile its other actions; OpWatch
	// the events watch.
	OpRecreate  = "recreate"
	OpReconcile = "reconcile"
	OpWatch     = "watch"
)

// SchemaVersion is the version of the command and report payloads
// (deviceevents.Command and deviceevents.RuntimeReport). Create carries every
// field of a command; the other ops may carry only DeviceID, NodeID and
// DockerHost (the runtime remembers the rest from the create). An empty
// DockerHost means the runtime's default engine (DEVICE_DOCKER_HOST,
// DOCKER_HOST or the local socket), an empty Image CLOUDPHONE_DEVICE_IMAGE;
// ADBPort is the host port the container's ADB port 5555/tcp is published
// on. Reports echo the Seq of the last command the runtime processed for
// the device, so the device context can drop stale ones.
const SchemaVersion = 1

// Labels put on every phone container.
const (
	LabelManaged  = "cloudphone.managed"
	LabelDeviceID = "cloudphone.device_id"
	LabelUserID   = "cloudphone.user_id"
	LabelNodeID   = "cloudphone.node_id"
	// LabelInstance names the platform instance whose runtime made the
	// container (Config.Instance); absent for the default instance.
	LabelInstance = "cloudphone.instance"
)

// ContainerName is the name of device's container on its engine; it makes
// creation idempotent (an engine refuses a second container of that name).
func ContainerName(deviceID string) string { return "cloudphone-" + deviceID }

// ADBContainerPort is the port adbd (or the stand-in) listens on inside the
// container.
const ADBContainerPort = "5555/tcp"

// Migrations creates runtime_commands and runtime_devices (set
// "deviceruntime"), in the device context's database next to its outbox.
var Migrations = migrations.Set

// Config is device-runtime's configuration, read once from the environment.
type Config struct {
	// DockerHost is the default engine (for commands without docker_host);
	// empty means DOCKER_HOST or the local socket.
	DockerHost string `env:"DEVICE_DOCKER_HOST"`
	// TLS client files for tcp:// engines. A node-specific directory
	// <TLSCertDir>/<node_id>/ holding ca.pem, cert.pem and key.pem wins over
	// the three files.
	TLSCA      string `env:"DEVICE_DOCKER_TLS_CA"`
	TLSCert    string `env:"DEVICE_DOCKER_TLS_CERT"`
	TLSKey     string `env:"DEVICE_DOCKER_TLS_KEY"`
	TLSCertDir string `env:"DEVICE_DOCKER_CERT_DIR"`
	// Image is the phone image used when a command names none.
	Image string `env:"CLOUDPHONE_DEVICE_IMAGE" default:"redroid/redroid:14.0.0-latest"`
	// Images are the further images (comma-separated) a command may name;
	// a command naming any other image is refused.
	Images string `env:"DEVICE_IMAGES"`
	// PullImages pulls a missing image; off, a missing image fails the create.
	PullImages bool `env:"DEVICE_PULL_IMAGES" default:"false"`
	// Privileged runs phones privileged: true, false, or auto (privileged
	// when the image is a redroid image, which needs it). A privileged phone
	// keeps the engine's capabilities and may gain privileges (Android's init
	// needs both); every other phone runs with no capability but those in
	// Capabilities and with no-new-privileges.
	Privileged string `env:"DEVICE_PRIVILEGED" default:"auto"`
	// Capabilities are the Linux capabilities (comma-separated, e.g.
	// NET_BIND_SERVICE) given back to unprivileged phones after all are
	// dropped; the stand-in needs none.
	Capabilities string `env:"DEVICE_CAPABILITIES"`
	// PidsLimit bounds the processes and threads of one phone, so that a
	// fork bomb inside it cannot exhaust the host.
	PidsLimit int64 `env:"DEVICE_PIDS_LIMIT" default:"4096"`
	// Network is the bridge network the phones join, made on first use with
	// inter-container traffic disabled, so that phones cannot reach each
	// other or the containers of other networks. Empty means
	// cloudphone-phones, or cloudphone-phones-<instance> for a named
	// instance.
	Network string `env:"DEVICE_NETWORK"`
	// Instance names this platform among others sharing an engine: its
	// containers carry it (LabelInstance) and it manages no container of
	// another instance. Empty means CLOUDPHONE_DATABASE_PREFIX, the name that
	// already keeps such platforms' databases apart.
	Instance       string `env:"DEVICE_RUNTIME_INSTANCE"`
	DatabasePrefix string `env:"CLOUDPHONE_DATABASE_PREFIX"`
	// Labels are extra labels "k=v,k2=v2" put on every phone container and
	// required of every container the runtime manages, so that several
	// platforms (or test runs) can share one engine without touching each
	// other's phones.
	Labels string `env:"DEVICE_CONTAINER_LABELS"`
	// BindAddress is the host address ADB ports are published on.
	BindAddress string `env:"DEVICE_ADB_BIND_ADDRESS" default:"127.0.0.1"`
	// Workers is how many commands run at once (one per device at a time).
	Workers int `env:"DEVICE_RUNTIME_WORKERS" default:"4"`
	// PollInterval bounds how long a queued command waits when no wake-up
	// reaches the workers (commands queued by another process).
	PollInterval time.Duration `env:"DEVICE_QUEUE_POLL_INTERVAL" default:"500ms"`
	// ReconcileInterval is the period of the reconcile loop.
	ReconcileInterval time.Duration `env:"DEVICE_RECONCILE_INTERVAL" default:"30s"`
	// StopTimeout is how long a stop or restart waits before killing.
	StopTimeout time.Duration `env:"DEVICE_STOP_TIMEOUT" default:"10s"`
	// ReadyTimeout is how long a started container has to answer the ADB
	// handshake on its published port before the start is reported failed.
	ReadyTimeout time.Duration `env:"DEVICE_ADB_READY_TIMEOUT" default:"60s"`
	// MaxAttempts bounds the tries of a command whose failure may pass
	// (engine unreachable, timeout); it is then reported failed.
	MaxAttempts int `env:"DEVICE_COMMAND_MAX_ATTEMPTS" default:"5"`
	// RetryBackoff is the wait after a command's first transient failure,
	// doubling per failure.
	RetryBackoff time.Duration `env:"DEVICE_COMMAND_RETRY_BACKOFF" default:"1s"`
	// MaxRecreations is how often the reconcile loop recreates a crashed
	// device before leaving it in error until the next start command.
	MaxRecreations int `env:"DEVICE_MAX_RECREATIONS" default:"1"`
	// MaxAPKBytes is the largest APK an install command may name.
	MaxAPKBytes int64 `env:"DEVICE_MAX_APK_BYTES" default:"209715200"`
	// InstallTimeout bounds one attempt at an install: the download, the
	// push to the phone and the package manager.
	InstallTimeout time.Duration `env:"DEVICE_INSTALL_TIMEOUT" default:"10m"`
	// NodeHealthInterval is how often every registered node's engine is
	// pinged.
	NodeHealthInterval time.Duration `env:"DEVICE_NODE_HEALTH_INTERVAL" default:"10s"`
	// NodeDownAfter is how long a node's engine may fail to answer before
	// the node is marked down and its running devices reported crashed
	// (reason node_down).
	NodeDownAfter time.Duration `env:"DEVICE_NODE_DOWN_AFTER" default:"60s"`
	// HealthFailures is how many reconcile passes in a row a running
	// container may fail the ADB handshake before it counts as crashed.
	HealthFailures int `env:"DEVICE_HEALTH_FAILURES" default:"3"`
}

// extraLabels parses Labels.
func (c Config) extraLabels() (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(c.Labels, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.HasPrefix(k, "cloudphone.managed") {
			return nil, fmt.Errorf("DEVICE_CONTAINER_LABELS: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// networkUnsafe matches what may not stand in a Docker network name.
var networkUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// capabilities parses Capabilities.
func (c Config) capabilities() ([]string, error) {
	var out []string
	for _, cp := range strings.Split(c.Capabilities, ",") {
		cp = strings.ToUpper(strings.TrimPrefix(strings.TrimSpace(cp), "CAP_"))
		if cp == "" {
			continue
		}
		if !capName.MatchString(cp) || cp == "ALL" {
			return nil, fmt.Errorf("DEVICE_CAPABILITIES: %q is not a capability name", cp)
		}
		out = append(out, cp)
	}
	return out, nil
}

var capName = regexp.MustCompile(`^[A-Z][A-Z_]{1,30}$`)

func (c Config) withDefaults() Config {
	if c.Instance == "" {
		c.Instance = c.DatabasePrefix
	}
	if c.Image == "" {
		c.Image = "redroid/redroid:14.0.0-latest"
	}
	if c.Privileged == "" {
		c.Privileged = "auto"
	}
	if c.PidsLimit <= 0 {
		c.PidsLimit = 4096
	}
	if c.Network == "" {
		c.Network = "cloudphone-phones"
		if c.Instance != "" {
			c.Network += "-" + networkUnsafe.ReplaceAllString(c.Instance, "-")
		}
	}
	if c.BindAddress == "" {
		c.BindAddress = "127.0.0.1"
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 30 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = time.Second
	}
	if c.MaxRecreations < 0 {
		c.MaxRecreations = 0
	}
	if c.MaxAPKBytes <= 0 {
		c.MaxAPKBytes = 200 << 20
	}
	if c.InstallTimeout <= 0 {
		c.InstallTimeout = 10 * time.Minute
	}
	if c.NodeHealthInterval <= 0 {
		c.NodeHealthInterval = 10 * time.Second
	}
	if c.NodeDownAfter <= 0 {
		c.NodeDownAfter = time.Minute
	}
	if c.HealthFailures <= 0 {
		c.HealthFailures = 3
	}
	return c
}
