// Package deviceadbgateway is the device-adb-gateway function: the one way users
// reach a phone's ADB endpoint. GET /api/v1/devices/{id}/adb?ticket=…
// checks a connection ticket from GET /api/v1/devices/{id}/connection and
// only then upgrades to a WebSocket whose binary messages carry the ADB
// byte stream to and from the phone's endpoint on its device host.
//
// It is long-running (min-scale 1): sessions live as long as the user keeps
// them open, and it watches the devices of its open sessions to close them
// when a phone stops or is deleted.
package deviceadbgateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "device-adb-gateway"

// Route is the function's one route.
const Route = "GET /api/v1/devices/{id}/adb"

// Routes lists every route, for the catalog.
var Routes = []string{Route}

// Emits lists the facts the function writes to the device context's outbox.
var Emits = []string{deviceevents.EventConnectionOpened, deviceevents.EventConnectionClosed}

// Devices is what the gateway needs of the device context.
type Devices interface {
	VerifyTicket(raw string) (device.Ticket, error)
	TicketEndpoint(ctx context.Context, tk device.Ticket) (string, error)
	States(ctx context.Context, ids []string) (map[string]device.State, error)
	RecordConnection(ctx context.Context, typ, source string, c deviceevents.ConnectionFact) error
}

// Config is the gateway's configuration.
type Config struct {
	// MaxSessionsPerUser bounds one user's open sessions across every
	// gateway instance.
	MaxSessionsPerUser int `env:"ADB_GATEWAY_MAX_SESSIONS_PER_USER" default:"8"`
	// WatchInterval is how often the states of the devices with open
	// sessions are read, so a session ends soon after its phone stops.
	WatchInterval time.Duration `env:"ADB_GATEWAY_WATCH_INTERVAL" default:"2s"`
	// DialTimeout bounds the connection to a phone's ADB endpoint.
	DialTimeout time.Duration `env:"ADB_GATEWAY_DIAL_TIMEOUT" default:"5s"`
	// RedisPrefix goes before the gateway's Redis keys.
	RedisPrefix string `env:"CLOUDPHONE_REDIS_PREFIX"`
}

// Options are what New needs.
type Options struct {
	Devices Devices
	Redis   *redis.Client
	// Verifier checks the access token a request may carry besides its
	// ticket (browsers send none; the CLI sends its own).
	Verifier *auth.Verifier
	Config   Config
	Log      *slog.Logger
	// Dial connects to a phone's ADB endpoint (default: TCP).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Function bridges WebSockets to phones. Refusals come before the upgrade,
// as JSON errors: no or a forged or expired ticket 401 unauthorized, a
// ticket used before 401, a ticket for another device or another user's
// device 403 forbidden (also when the request carries a user's access token
// that is not the ticket's user), a phone that is not running 409 conflict,
// a user at the session limit 429 rate_limited, a phone whose endpoint does
// not answer 503 unavailable. A ticket is spent by the first request that
// passes every other check, in Redis, so no instance accepts it again. Safe
// for concurrent use.
type Function struct {
	devs    Devices
	rdb     *redis.Client
	verify  *auth.Verifier
	cfg     Config
	log     *slog.Logger
	dial    func(ctx context.Context, addr string) (net.Conn, error)
	now     func() time.Time
	mux     *http.ServeMux
	limiter *sessionLimiter

	mu       sync.Mutex
	sessions map[string]*session
	stopping bool
	stop     context.CancelFunc
	done     chan struct{}
	wg       sync.WaitGroup
}

// New returns the gateway. It fails when a dependency is missing or a
// setting is out of range.
func New(opt Options) (*Function, error) {
	switch {
	case opt.Devices == nil:
		return nil, errors.New("deviceadbgateway: New needs the device context")
	case opt.Redis == nil:
		return nil, errors.New("deviceadbgateway: New needs Redis")
	case opt.Verifier == nil:
		return nil, errors.New("deviceadbgateway: New needs an access-token verifier")
	case opt.Log == nil:
		return nil, errors.New("deviceadbgateway: New needs a logger")
	case opt.Config.MaxSessionsPerUser < 1:
		return nil, fmt.Errorf("deviceadbgateway: ADB_GATEWAY_MAX_SESSIONS_PER_USER %d is not positive", opt.Config.MaxSessionsPerUser)
	case opt.Config.WatchInterval <= 0 || opt.Config.DialTimeout <= 0:
		return nil, errors.New("deviceadbgateway: ADB_GATEWAY_WATCH_INTERVAL and ADB_GATEWAY_DIAL_TIMEOUT must be positive")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Dial == nil {
		d := &net.Dialer{Timeout: opt.Config.DialTimeout, KeepAlive: 30 * time.Second}
		opt.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	f := &Function{devs: opt.Devices, rdb: opt.Redis, verify: opt.Verifier, cfg: opt.Config, log: opt.Log, dial: opt.Dial, now: opt.Now,
		mux: httpjson.NewMux(opt.Log), sessions: map[string]*session{},
		limiter: &sessionLimiter{rdb: opt.Redis, prefix: opt.Config.RedisPrefix + "adbgw:sessions:", limit: opt.Config.MaxSessionsPerUser}}
	f.mux.HandleFunc(Route, f.serve)
	return f, nil
}

// Start starts the watch of the devices with open sessions.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stop != nil {
		return nil
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.stop, f.done = cancel, make(chan struct{})
	go f.watch(wctx)
	return nil
}

// Stop refuses new sessions, closes every open one (each reports its
// closed fact) and ends the watch.
func (f *Function) Stop(ctx context.Context) error {
	f.mu.Lock()
	f.stopping = true
	for _, s := range f.sessions {
		s.end(deviceevents.ConnectionGatewayStopping)
	}
	stop, done := f.stop, f.done
	f.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	waited := make(chan struct{})
	go func() { f.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("deviceadbgateway: stop: sessions still closing: %w", ctx.Err())
	}
}

// Ready reports whether Redis answers: without it no ticket can be spent.
func (f *Function) Ready(ctx context.Context) (bool, error) {
	return f.rdb.Ping(ctx).Err() == nil, nil
}

// Sessions is the number of sessions open on this instance.
func (f *Function) Sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// admitted is what a request that passed the checks holds: its session
// slot and the connection to the phone.
type admitted struct {
	tk    device.Ticket
	id    string
	phone net.Conn
}

func (f *Function) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	a, err := f.admit(r.Context(), r)
	if err != nil {
		if apierr.Is(err, apierr.Unauthorized) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cloudphone"`)
		}
		apierr.Write(w, r, f.log, err)
		return
	}
	// The server's read and write deadlines are for ordinary requests; a
	// session lasts as long as the user keeps it.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		f.log.InfoContext(r.Context(), "ADB session not upgraded", "device_id", a.tk.DeviceID, "err", err)
		f.release(a, 0, 0, deviceevents.ConnectionClosedByClient, false)
		return
	}
	f.bridge(ws, a)
}

// admit runs every check before the upgrade, spends the ticket, takes a
// session slot and connects to the phone.
func (f *Function) admit(ctx context.Context, r *http.Request) (*admitted, error) {
	raw := r.URL.Query().Get("ticket")
	if raw == "" {
		return nil, apierr.New(apierr.Unauthorized, "a connection ticket (query parameter ticket) is required")
	}
	tk, err := f.devs.VerifyTicket(raw)
	if err != nil {
		return nil, err
	}
	if tk.DeviceID != r.PathValue("id") {
		return nil, apierr.New(apierr.Forbidden, "the ticket is not for this device")
	}
	if bearer := auth.BearerToken(r); bearer != "" {
		p, err := f.verify.Verify(ctx, bearer)
		if err != nil {
			return nil, err
		}
		if p.UserID != tk.UserID {
			return nil, apierr.New(apierr.Forbidden, "the ticket is another user's")
		}
	}
	addr, err := f.devs.TicketEndpoint(ctx, tk)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	stopping := f.stopping
	f.mu.Unlock()
	if stopping {
		return nil, apierr.New(apierr.Unavailable, "the gateway is stopping")
	}
	if err := f.spend(ctx, tk); err != nil {
		return nil, err
	}
	id, err := newSessionID()
	if err != nil {
		return nil, err
	}
	ok, err := f.limiter.acquire(ctx, tk.UserID, id, f.now())
	if err != nil {
		return nil, apierr.Wrap(apierr.Unavailable, err, "sessions cannot be counted now")
	}
	if !ok {
		return nil, apierr.New(apierr.RateLimited, "you have %d ADB sessions open, the most allowed", f.cfg.MaxSessionsPerUser)
	}
	dctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	phone, err := f.dial(dctx, addr)
	cancel()
	if err != nil {
		f.limiter.release(context.WithoutCancel(ctx), tk.UserID, id)
		return nil, apierr.Wrap(apierr.Unavailable, fmt.Errorf("dial phone %s at %s: %w", tk.DeviceID, addr, err), "the phone does not answer")
	}
	a := &admitted{tk: tk, id: id, phone: phone}
	fact := deviceevents.ConnectionFact{DeviceID: tk.DeviceID, UserID: tk.UserID, SessionID: id, At: f.now().UTC()}
	if err := f.devs.RecordConnection(ctx, deviceevents.EventConnectionOpened, device.SourceADBGateway, fact); err != nil {
		_ = phone.Close()
		f.limiter.release(context.WithoutCancel(ctx), tk.UserID, id)
		return nil, err
	}
	return a, nil
}

// spend records tk as used until it expires; a ticket already recorded is
// apierr Unauthorized.
func (f *Function) spend(ctx context.Context, tk device.Ticket) error {
	ttl := tk.ExpiresAt.Sub(f.now())
	if ttl < time.Second {
		ttl = time.Second
	}
	set, err := f.rdb.SetNX(ctx, f.cfg.RedisPrefix+"adbgw:ticket:"+tk.ID, tk.DeviceID, ttl).Result()
	if err != nil {
		return apierr.Wrap(apierr.Unavailable, fmt.Errorf("spend ticket %s: %w", tk.ID, err), "tickets cannot be checked now")
	}
	if !set {
		return apierr.New(apierr.Unauthorized, "the connection ticket was used already; ask /connection for a new one")
	}
	return nil
}

// session is one open bridge.
type session struct {
	a        *admitted
	deviceID string
	reason   atomic.Value // string: why it ended, first cause wins
	cancel   context.CancelFunc
}

func (s *session) end(reason string) {
	s.reason.CompareAndSwap(nil, reason)
	s.cancel()
}

// bridge copies bytes both ways until either side closes, the phone stops,
// or the gateway stops; then it reports the closed fact.
func (f *Function) bridge(ws *websocket.Conn, a *admitted) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &session{a: a, deviceID: a.tk.DeviceID, cancel: cancel}
	f.mu.Lock()
	f.sessions[a.id] = s
	f.wg.Add(1)
	if f.stopping {
		s.end(deviceevents.ConnectionGatewayStopping)
	}
	f.mu.Unlock()
	defer f.wg.Done()
	f.log.Info("ADB session opened", "session_id", a.id, "device_id", a.tk.DeviceID, "user_id", a.tk.UserID)

	// The WebSocket is closed below with a status that says why; cancelling
	// the NetConn's own context would close it as a policy violation.
	conn := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	var in, out int64
	var errIn, errOut error
	var copies sync.WaitGroup
	copies.Add(2)
	go func() {
		defer copies.Done()
		in, errIn = io.Copy(a.phone, conn)
		s.end(deviceevents.ConnectionClosedByClient)
	}()
	go func() {
		defer copies.Done()
		out, errOut = io.Copy(conn, a.phone)
		s.end(deviceevents.ConnectionClosedByPhone)
	}()
	<-ctx.Done()
	reason, _ := s.reason.Load().(string)
	code := websocket.StatusNormalClosure
	if reason == deviceevents.ConnectionDeviceStopped || reason == deviceevents.ConnectionGatewayStopping {
		code = websocket.StatusGoingAway
	}
	_ = a.phone.Close()
	_ = ws.Close(code, reason)
	copies.Wait()
	f.mu.Lock()
	delete(f.sessions, a.id)
	f.mu.Unlock()
	f.log.Debug("ADB session copies ended", "session_id", a.id, "from_client_err", errIn, "to_client_err", errOut)
	f.release(a, in, out, reason, true)
}

// release gives back a's session slot and, when opened, reports the
// session closed.
func (f *Function) release(a *admitted, in, out int64, reason string, logClose bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.phone.Close()
	f.limiter.release(ctx, a.tk.UserID, a.id)
	fact := deviceevents.ConnectionFact{DeviceID: a.tk.DeviceID, UserID: a.tk.UserID, SessionID: a.id, At: f.now().UTC(),
		Reason: reason, BytesIn: in, BytesOut: out}
	if err := f.devs.RecordConnection(ctx, deviceevents.EventConnectionClosed, device.SourceADBGateway, fact); err != nil {
		f.log.Error("closed ADB session not recorded", "session_id", a.id, "device_id", a.tk.DeviceID, "err", err)
	}
	if logClose {
		f.log.Info("ADB session closed", "session_id", a.id, "device_id", a.tk.DeviceID, "reason", reason,
			"bytes_in", in, "bytes_out", out)
	}
}

// watch ends the sessions of devices that stopped, failed or were deleted,
// and keeps this instance's session slots alive in Redis.
func (f *Function) watch(ctx context.Context) {
	defer close(f.done)
	t := time.NewTicker(f.cfg.WatchInterval)
	defer t.Stop()
	lastRenew := f.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		ids := make([]string, 0, len(f.sessions))
		seen := map[string]bool{}
		byUser := map[string][]string{}
		for id, s := range f.sessions {
			if !seen[s.deviceID] {
				seen[s.deviceID] = true
				ids = append(ids, s.deviceID)
			}
			byUser[s.a.tk.UserID] = append(byUser[s.a.tk.UserID], id)
		}
		f.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		states, err := f.devs.States(ctx, ids)
		if err != nil {
			f.log.Warn("states of devices with ADB sessions not read", "err", err)
		} else {
			f.mu.Lock()
			for _, s := range f.sessions {
				if st, ok := states[s.deviceID]; !ok || st != device.StateRunning {
					s.end(deviceevents.ConnectionDeviceStopped)
				}
			}
			f.mu.Unlock()
		}
		if now := f.now(); now.Sub(lastRenew) >= sessionLease/3 {
			lastRenew = now
			for user, sids := range byUser {
				if err := f.limiter.renew(ctx, user, sids, now); err != nil {
					f.log.Warn("ADB session slots not renewed", "user_id", user, "err", err)
				}
			}
		}
	}
}

func newSessionID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
