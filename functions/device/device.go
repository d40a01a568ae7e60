// Package device is the cloud-phone context on the database
// cloudphone_device: devices and their state machine, placement on nodes
// (device hosts), the ADB host-port pool, quota through the user context's
// internal API, connection tickets, the commands sent to device-runtime and
// the facts billing meters. Its functions (devices, adminnodes, reports,
// balancestop) are thin wrappers around Service.
//
// Commands to device-runtime and facts for other contexts are written to the
// outbox in the same transaction as the state change that causes them;
// runtime reports and billing's balance.exhausted are applied with an inbox
// claim in the same transaction as their effects.
package device

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// Database is the name of the context's database.
const Database = "cloudphone_device"

// ContextName is the bounded context's name in every function spec (its
// OpenFaaS bundle is cloudphone-<name>).
const ContextName = "device"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the nodes, devices, device_ports and device_apps tables. Open the
// database with outbox.Migrations, inbox.Migrations and these.
var Migrations = db.Embedded("device", migrationFiles, "migrations")

// DefaultImage is the phone image when CLOUDPHONE_DEVICE_IMAGE is not set.
const DefaultImage = "redroid/redroid:14.0.0-latest"

// Config is the device context's configuration, read once at start.
type Config struct {
	// UserURL is the base URL of the user context's internal quota API
	// (/internal/v1/quotas/...).
	UserURL string `env:"CLOUDPHONE_USER_URL" default:"http://127.0.0.1:8080"`
	// AppURL is the base URL of the app context's internal API
	// (/internal/v1/users/{user_id}/apps/{app_id}/download).
	AppURL string `env:"CLOUDPHONE_APP_URL" default:"http://127.0.0.1:8080"`
	// BillingURL is the base URL of billing's internal funds API
	// (/internal/v1/funds/...).
	BillingURL string `env:"CLOUDPHONE_BILLING_URL" default:"http://127.0.0.1:8080"`
	// Image is the phone image a device gets when its request names none.
	Image string `env:"CLOUDPHONE_DEVICE_IMAGE" default:"redroid/redroid:14.0.0-latest"`
	// Images lists further images (comma-separated) a request may name.
	Images string `env:"DEVICE_IMAGES"`
	// PortRange is the ADB host-port pool, "first-last". The default stays
	// below Linux's ephemeral ports (32768-60999), where an outgoing
	// connection on the device host could hold a phone's port, and below
	// Kubernetes' NodePorts (30000-32767).
	PortRange string `env:"DEVICE_PORT_RANGE" default:"28000-28999"`
	// DefaultStorageGB is a device's storage when its request names none.
	DefaultStorageGB int `env:"DEVICE_DEFAULT_STORAGE_GB" default:"8"`
	// The node registered on first start (when no node of that name exists).
	NodeName     string `env:"DEVICE_NODE_NAME" default:"local"`
	DockerHost   string `env:"DEVICE_DOCKER_HOST" default:"unix:///var/run/docker.sock"`
	NodeADBHost  string `env:"DEVICE_NODE_ADB_HOST" default:"127.0.0.1"`
	NodeCPU      int    `env:"DEVICE_NODE_CPU" default:"64"`
	NodeMemoryMB int    `env:"DEVICE_NODE_MEMORY_MB" default:"262144"`
	// Placement is how phones are spread over the nodes: spread (the least
	// loaded node with room) or pack (the most loaded one).
	Placement string `env:"DEVICE_PLACEMENT" default:"spread"`
	// TicketKey is the standard base64 of at least 32 bytes that sign
	// connection tickets; when empty a key is derived from ServiceTokenKey.
	TicketKey string        `env:"CLOUDPHONE_DEVICE_TICKET_KEY" secret:"device-ticket-key"`
	TicketTTL time.Duration `env:"DEVICE_TICKET_TTL" default:"5m"`
	// GatewayURL is the public ws:// or wss:// base (scheme and host) of the
	// ADB gateway that /connection answers; when empty it is taken from
	// the request (wss when it came over TLS or X-Forwarded-Proto is https).
	GatewayURL string `env:"DEVICE_GATEWAY_URL"`
	// ServiceTokenKey signs the service tokens of calls to the user context.
	ServiceTokenKey string `env:"CLOUDPHONE_SERVICE_TOKEN_KEY" secret:"service-token-key"`
	// RedisPrefix goes before the Redis keys of the service-token cache.
	RedisPrefix string `env:"CLOUDPHONE_REDIS_PREFIX"`
	// UserTokenPublicKey checks the access tokens of public routes.
	UserTokenPublicKey string `env:"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY" secret:"user-token-public-key"`
}

// PortRange is an inclusive range of ADB host ports.
type PortRange struct{ First, Last int }

// ParsePortRange parses "first-last" (1 ≤ first ≤ last ≤ 65535).
func ParsePortRange(s string) (PortRange, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || first < 1 || last > 65535 || first > last {
		return PortRange{}, fmt.Errorf("device: DEVICE_PORT_RANGE %q is not first-last within 1-65535", s)
	}
	return PortRange{first, last}, nil
}

// NodeConfig is the node registered at start.
type NodeConfig struct {
	Name, DockerHost, ADBHost string
	CPUCores, MemoryMB        int
}

// Options are what Open needs beyond the pool.
type Options struct {
	Quota Quota
	// Apps answers the downloads of users' apps for installs; nil leaves
	// installs unavailable (apierr Unavailable) and the rest working.
	Apps Apps
	// Funds, when set, is asked before a phone starts (create, start,
	// restart); nil starts phones whatever the balance.
	Funds            Funds
	Tickets          *Tickets
	Ports            PortRange
	Node             NodeConfig
	Image            string   // default image
	Images           []string // further allowed images
	DefaultStorageGB int
	// Placement is PlacementSpread (also when empty) or PlacementPack.
	Placement string
	// GatewayURL is the ws:// or wss:// base of the ADB gateway (empty:
	// taken from each request).
	GatewayURL string
	Log        *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service implements the device context's use cases. It is safe for
// concurrent use.
type Service struct {
	pool    *pgxpool.Pool
	quota   Quota
	apps    Apps
	funds   Funds
	tickets *Tickets
	ports   PortRange
	image   string
	images  map[string]bool
	storage int
	pack    bool // PlacementPack
	gateway string
	log     *slog.Logger
	now     func() time.Time
	touched touches
	metrics *metrics.Metrics // set by ReportTo
}

// ReportTo has s report how long new phones take to run
// (cloudphone_phone_create_to_running_seconds) to m, and registers
// cloudphone_phones, the phones by state, read from the database at each
// scrape (so it is right after any restart).
func (s *Service) ReportTo(m *metrics.Metrics) error {
	s.metrics = m
	return m.Gauges(s.log, s.readPhones, metrics.GaugeDesc{Name: "cloudphone_phones",
		Help: "Phones by state, as the database holds them (deleted phones included).", Labels: []string{"state"}})
}

func (s *Service) readPhones(ctx context.Context) ([][]metrics.Sample, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*)::float8 FROM devices GROUP BY state`)
	if err != nil {
		return nil, err
	}
	counts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (metrics.Sample, error) {
		var st string
		var n float64
		err := row.Scan(&st, &n)
		return metrics.Sample{Labels: []string{st}, Value: n}, err
	})
	if err != nil {
		return nil, err
	}
	for _, st := range States {
		if !slices.ContainsFunc(counts, func(x metrics.Sample) bool { return x.Labels[0] == string(st) }) {
			counts = append(counts, metrics.Sample{Labels: []string{string(st)}})
		}
	}
	return [][]metrics.Sample{counts}, nil
}

// Open returns a Service on pool (the cloudphone_device database migrated
// with outbox.Migrations, inbox.Migrations and Migrations) and registers
// opt.Node when no node of that name exists yet. It fails when a dependency
// is missing or a setting is out of range.
func Open(ctx context.Context, pool *pgxpool.Pool, opt Options) (*Service, error) {
	switch {
	case pool == nil:
		return nil, errors.New("device: Open needs a Postgres pool")
	case opt.Quota == nil:
		return nil, errors.New("device: Open needs a Quota")
	case opt.Tickets == nil:
		return nil, errors.New("device: Open needs Tickets")
	case opt.Log == nil:
		return nil, errors.New("device: Open needs a logger")
	case opt.Ports.First < 1 || opt.Ports.Last > 65535 || opt.Ports.First > opt.Ports.Last:
		return nil, fmt.Errorf("device: port range %d-%d is not within 1-65535", opt.Ports.First, opt.Ports.Last)
	case opt.Image == "" || !imagePattern.MatchString(opt.Image):
		return nil, fmt.Errorf("device: default image %q is not an image reference", opt.Image)
	case opt.GatewayURL != "" && !gatewayURLPattern.MatchString(opt.GatewayURL):
		return nil, fmt.Errorf("device: DEVICE_GATEWAY_URL %q is not a ws:// or wss:// URL without a path", opt.GatewayURL)
	case opt.Placement != "" && opt.Placement != PlacementSpread && opt.Placement != PlacementPack:
		return nil, fmt.Errorf("device: DEVICE_PLACEMENT %q is neither spread nor pack", opt.Placement)
	case opt.DefaultStorageGB < 0 || opt.DefaultStorageGB > StorageGBMax:
		return nil, fmt.Errorf("device: default storage %d GB is not within 0-%d", opt.DefaultStorageGB, StorageGBMax)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	images := map[string]bool{opt.Image: true}
	for _, im := range opt.Images {
		if im = strings.TrimSpace(im); im != "" {
			if !imagePattern.MatchString(im) {
				return nil, fmt.Errorf("device: DEVICE_IMAGES: %q is not an image reference", im)
			}
			images[im] = true
		}
	}
	s := &Service{pool: pool, quota: opt.Quota, apps: opt.Apps, funds: opt.Funds, tickets: opt.Tickets, ports: opt.Ports, image: opt.Image,
		images: images, storage: opt.DefaultStorageGB, pack: opt.Placement == PlacementPack, gateway: strings.TrimSuffix(opt.GatewayURL, "/"), log: opt.Log, now: opt.Now}
	if opt.Node.Name != "" {
		if err := s.RegisterNode(ctx, opt.Node); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// coverHour asks billing whether userID can pay an hour of d; without Funds
// it passes.
func (s *Service) coverHour(ctx context.Context, userID string, cpuCores, memoryMB int) error {
	if s.funds == nil {
		return nil
	}
	return s.funds.CoverHour(ctx, userID, cpuCores, memoryMB)
}
