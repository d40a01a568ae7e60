package device

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Connection is the answer of GET /api/v1/devices/{id}/connection: URL is
// the WebSocket URL of the device's ADB gateway route with the ticket as its
// query parameter, Ticket the single-use connection ticket alone, ADB the
// phone's endpoint on its device host (reachable by the platform, not by
// users).
type Connection struct {
	URL       string    `json:"url"`
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
	ADB       string    `json:"adb"`
}

var gatewayURLPattern = regexp.MustCompile(`^wss?://[^/?#\s]+/?$`)

// Connect returns, for p's running device id, a fresh signed single-use
// ticket that expires after the tickets' TTL and the gateway URL under the
// configured gateway base or, when none is configured, under requestBase
// (the ws:// or wss:// scheme and host the request came to). Another user's
// device is apierr NotFound, a device that is not running apierr Conflict.
func (s *Service) Connect(ctx context.Context, p auth.Principal, id, requestBase string) (Connection, error) {
	gatewayBase := s.gateway
	if gatewayBase == "" {
		gatewayBase = requestBase
	}
	d, err := s.owned(ctx, p, id)
	if err != nil {
		return Connection{}, err
	}
	tid, err := newTicketID()
	if err != nil {
		return Connection{}, err
	}
	tk := Ticket{ID: tid, DeviceID: d.ID, UserID: d.UserID, ADB: d.adbAddr(),
		ExpiresAt: s.now().Add(s.tickets.TTL()).UTC().Truncate(time.Second)}
	sig, err := s.tickets.Sign(tk)
	if err != nil {
		return Connection{}, err
	}
	url := gatewayBase + "/api/v1/devices/" + d.ID + "/adb?ticket=" + sig
	return Connection{URL: url, Ticket: sig, ExpiresAt: tk.ExpiresAt, ADB: tk.ADB}, nil
}

// ADBEndpoint returns the ADB endpoint (host:port on its device host) of p's
// running device id, for the routes that use the phone on p's behalf.
// Another user's device is apierr NotFound, a missing permission apierr
// Forbidden, a device that is not running apierr Conflict.
func (s *Service) ADBEndpoint(ctx context.Context, p auth.Principal, id string) (string, error) {
	d, err := s.owned(ctx, p, id)
	if err != nil {
		return "", err
	}
	return d.adbAddr(), nil
}

// owned returns p's own running device id.
func (s *Service) owned(ctx context.Context, p auth.Principal, id string) (Device, error) {
	d, err := s.Get(ctx, p, id)
	if err != nil {
		return Device{}, err
	}
	if d.UserID != p.UserID {
		return Device{}, errNotFound()
	}
	if !p.HasPermission("device:operate") {
		return Device{}, apierr.New(apierr.Forbidden, "you may not use devices")
	}
	if d.State != StateRunning {
		return Device{}, conflict(&d, "use")
	}
	return d, nil
}

// VerifyTicket returns the ticket raw carries when its signature is good and
// it has not expired; otherwise apierr Unauthorized. It does not know
// whether the ticket was used before: that is the gateway's to record.
func (s *Service) VerifyTicket(raw string) (Ticket, error) {
	tk, err := s.tickets.Verify(raw, s.now())
	if err != nil {
		return Ticket{}, apierr.Wrap(apierr.Unauthorized, err, "invalid or expired connection ticket")
	}
	if tk.ID == "" {
		return Ticket{}, apierr.New(apierr.Unauthorized, "invalid or expired connection ticket")
	}
	return tk, nil
}

// TicketEndpoint returns the ADB endpoint of the device tk grants. A device
// that is gone is apierr NotFound; one that is not the ticket user's apierr
// Forbidden; one that is not running apierr Conflict.
func (s *Service) TicketEndpoint(ctx context.Context, tk Ticket) (string, error) {
	if !validate.UUID(tk.DeviceID) {
		return "", errNotFound()
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, selectDevices+` WHERE d.id = $1`, tk.DeviceID))
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNotFound()
	}
	if err != nil {
		return "", fmt.Errorf("read device %s: %w", tk.DeviceID, err)
	}
	if d.UserID != tk.UserID {
		return "", apierr.New(apierr.Forbidden, "the ticket is not for this device")
	}
	if d.State != StateRunning {
		return "", conflict(&d, "connect to")
	}
	return d.adbAddr(), nil
}

const selectStates = `SELECT id::text, state FROM devices WHERE id = ANY($1::uuid[])`

// States returns the state of each device of ids that exists; a device that
// does not is missing from the map.
func (s *Service) States(ctx context.Context, ids []string) (map[string]State, error) {
	out := make(map[string]State, len(ids))
	valid := ids[:0:0]
	for _, id := range ids {
		if validate.UUID(id) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, selectStates, valid)
	if err != nil {
		return nil, fmt.Errorf("read states of %d devices: %w", len(valid), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var st State
		if err := rows.Scan(&id, &st); err != nil {
			return nil, fmt.Errorf("read device states: %w", err)
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read device states: %w", err)
	}
	return out, nil
}

// RecordConnection writes the fact typ (EventConnectionOpened or
// EventConnectionClosed) about c to the outbox, from source.
func (s *Service) RecordConnection(ctx context.Context, typ, source string, c deviceevents.ConnectionFact) error {
	if typ != deviceevents.EventConnectionOpened && typ != deviceevents.EventConnectionClosed {
		return fmt.Errorf("record connection %s: unknown fact %q", c.SessionID, typ)
	}
	c.SchemaVersion = 1
	d := &Device{ID: c.DeviceID}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fact(ctx, tx, typ, source, d, c); err != nil {
			return fmt.Errorf("record connection %s of device %s: %w", c.SessionID, c.DeviceID, err)
		}
		return nil
	})
}

func (d *Device) adbAddr() string { return net.JoinHostPort(d.adbHost, strconv.Itoa(d.ADBPort)) }

func newTicketID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("ticket id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
