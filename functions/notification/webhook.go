package notification

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/validate"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

// Headers of a webhook delivery besides the signature (webhooksig.Header,
// the scheme of the platform's inbound payment webhook).
const (
	EventHeader    = "Cloudphone-Event"
	DeliveryHeader = "Cloudphone-Delivery"
)

// WebhookPayload is the JSON body of every delivery. ID is the id of the
// event the notification came from: the same for every endpoint and every
// retry, so receivers can deduplicate.
type WebhookPayload struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	UserID    string          `json:"user_id"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Data      json.RawMessage `json:"data"`
}

// Webhook is a user's endpoint. Its secret is only in WebhookCreated.
type Webhook struct {
	ID         string    `json:"id"`
	URL        string    `json:"url"`
	EventTypes []string  `json:"event_types"`
	Active     bool      `json:"active"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// WebhookCreated is the answer to CreateWebhook: the only time the secret
// is shown.
type WebhookCreated struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookRequest creates an endpoint, or changes one (fields left out keep
// their value).
type WebhookRequest struct {
	URL        *string  `json:"url"`
	EventTypes []string `json:"event_types"`
	Active     *bool    `json:"active"`
}

// maxURLLength bounds an endpoint's URL.
const maxURLLength = 2048

// checkTarget validates raw as an endpoint URL: http or https, a host, no
// credentials, and every address it resolves to allowed (see AllowedIP). It
// returns an apierr Invalid otherwise.
func (s *Service) checkTarget(ctx context.Context, raw string) error {
	if len(raw) > maxURLLength || !validate.NoControlChars(raw) {
		return apierr.New(apierr.Invalid, "url: must be at most %d printable characters", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return apierr.New(apierr.Invalid, "url: must be an absolute http or https URL")
	}
	if u.User != nil {
		return apierr.New(apierr.Invalid, "url: must not carry credentials")
	}
	if u.Fragment != "" {
		return apierr.New(apierr.Invalid, "url: must not have a fragment")
	}
	addrs, err := s.hooks.resolve(ctx, u.Hostname())
	if err != nil {
		return apierr.Wrap(apierr.Invalid, err, "url: host %q does not resolve", u.Hostname())
	}
	for _, a := range addrs {
		if !AllowedIP(a, s.cfg.WebhookAllowLoopback) {
			return apierr.New(apierr.Invalid, "url: %s resolves to %s, a loopback, private, link-local or metadata address, which webhooks may not target", u.Hostname(), a)
		}
	}
	return nil
}

// checkEventTypes returns types without duplicates, or an apierr Invalid when
// one is unknown or none is given.
func checkEventTypes(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, apierr.New(apierr.Invalid, "event_types: give at least one notification type")
	}
	var out []string
	for i, t := range types {
		if _, ok := kindByType(t); !ok {
			return nil, apierr.New(apierr.Invalid, "event_types[%d]: unknown notification type %q", i, t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

const webhookColumns = `id, url, event_types, active, created_at, updated_at`

func scanWebhook(row pgx.Row) (Webhook, error) {
	var w Webhook
	err := row.Scan(&w.ID, &w.URL, &w.EventTypes, &w.Active, &w.CreatedAt, &w.UpdatedAt)
	return w, err
}

// CreateWebhook registers an endpoint of userID with a new secret. A bad
// URL (one that resolves to a refused address included) or event type is an
// apierr Invalid; more than MaxWebhooks endpoints an apierr QuotaExceeded.
func (s *Service) CreateWebhook(ctx context.Context, userID string, req WebhookRequest) (WebhookCreated, error) {
	if req.URL == nil {
		return WebhookCreated{}, apierr.New(apierr.Invalid, "url: is required")
	}
	types, err := checkEventTypes(req.EventTypes)
	if err != nil {
		return WebhookCreated{}, err
	}
	if err := s.checkTarget(ctx, *req.URL); err != nil {
		return WebhookCreated{}, err
	}
	active := req.Active == nil || *req.Active
	secret, err := newSecret()
	if err != nil {
		return WebhookCreated{}, err
	}
	var out WebhookCreated
	err = db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))`, userID); err != nil {
			return fmt.Errorf("lock webhooks of user %s: %w", userID, err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhooks WHERE user_id = $1`, userID).Scan(&n); err != nil {
			return fmt.Errorf("count webhooks of user %s: %w", userID, err)
		}
		if n >= s.cfg.MaxWebhooks {
			return apierr.New(apierr.QuotaExceeded, "at most %d webhooks per user", s.cfg.MaxWebhooks)
		}
		now := s.nowDB()
		w, err := scanWebhook(tx.QueryRow(ctx, `
			INSERT INTO webhooks (id, user_id, url, event_types, secret, active, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING `+webhookColumns,
			events.NewID(), userID, *req.URL, types, secret, active, now))
		if err != nil {
			return fmt.Errorf("insert webhook of user %s: %w", userID, err)
		}
		out = WebhookCreated{Webhook: w, Secret: secret}
		return nil
	})
	return out, err
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a webhook secret: %w", err)
	}
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// Webhooks lists userID's endpoints, oldest first.
func (s *Service) Webhooks(ctx context.Context, userID string) ([]Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks of user %s: %w", userID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Webhook, error) { return scanWebhook(r) })
}

var errNoWebhook = apierr.New(apierr.NotFound, "no such webhook")

// WebhookOf returns userID's endpoint id; another user's is apierr NotFound.
func (s *Service) WebhookOf(ctx context.Context, userID, id string) (Webhook, error) {
	if !validate.UUID(id) {
		return Webhook{}, errNoWebhook
	}
	w, err := scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND user_id = $2`, id, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Webhook{}, errNoWebhook
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("webhook %s: %w", id, err)
	}
	return w, nil
}

// UpdateWebhook changes userID's endpoint id as CreateWebhook checks; the
// secret stays. Another user's endpoint is apierr NotFound.
func (s *Service) UpdateWebhook(ctx context.Context, userID, id string, req WebhookRequest) (Webhook, error) {
	if req.URL == nil && req.EventTypes == nil && req.Active == nil {
		return Webhook{}, apierr.New(apierr.Invalid, "give url, event_types or active")
	}
	cur, err := s.WebhookOf(ctx, userID, id)
	if err != nil {
		return Webhook{}, err
	}
	if req.URL != nil {
		if err := s.checkTarget(ctx, *req.URL); err != nil {
			return Webhook{}, err
		}
		cur.URL = *req.URL
	}
	if req.EventTypes != nil {
		if cur.EventTypes, err = checkEventTypes(req.EventTypes); err != nil {
			return Webhook{}, err
		}
	}
	if req.Active != nil {
		cur.Active = *req.Active
	}
	w, err := scanWebhook(s.pool.QueryRow(ctx, `
		UPDATE webhooks SET url = $3, event_types = $4, active = $5, updated_at = $6
		 WHERE id = $1 AND user_id = $2 RETURNING `+webhookColumns,
		id, userID, cur.URL, cur.EventTypes, cur.Active, s.nowDB()))
	if errors.Is(err, pgx.ErrNoRows) {
		return Webhook{}, errNoWebhook
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("update webhook %s: %w", id, err)
	}
	return w, nil
}

// DeleteWebhook removes userID's endpoint id and its deliveries. Another
// user's endpoint is apierr NotFound.
func (s *Service) DeleteWebhook(ctx context.Context, userID, id string) error {
	if !validate.UUID(id) {
		return errNoWebhook
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhooks WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return errNoWebhook
	}
	return nil
}

// Delivery is one event sent (or to be sent) to one endpoint, with its
// attempts, oldest first.
type Delivery struct {
	ID            string     `json:"id"`
	WebhookID     string     `json:"webhook_id"`
	EventID       string     `json:"event_id"`
	Type          string     `json:"type"`
	Status        string     `json:"status"` // pending, delivered or failed
	Attempts      []Attempt  `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	ExpiresAt     time.Time  `json:"expires_at"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
}

// Attempt is one try of a delivery: the endpoint's status code (0 when none
// came) or the error.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"`
	Error      string    `json:"error,omitempty"`
	DurationMS int       `json:"duration_ms"`
}

// DeliveryPage is one page of an endpoint's deliveries, newest first.
type DeliveryPage struct {
	Items      []Delivery `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

const deliveryColumns = `id, webhook_id, event_id, type, status, next_attempt_at, expires_at, last_error, created_at, delivered_at`

func scanDelivery(row pgx.Row) (Delivery, error) {
	var d Delivery
	var next time.Time
	err := row.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.Type, &d.Status, &next, &d.ExpiresAt, &d.LastError, &d.CreatedAt, &d.DeliveredAt)
	if d.Status == "pending" {
		d.NextAttemptAt = &next
	}
	return d, err
}

// Deliveries returns a page (limit 1–MaxPageSize, 0 for the default) of the
// deliveries of userID's endpoint id with their attempts. Another user's
// endpoint is apierr NotFound.
func (s *Service) Deliveries(ctx context.Context, userID, id string, limit int, cursor string) (DeliveryPage, error) {
	if _, err := s.WebhookOf(ctx, userID, id); err != nil {
		return DeliveryPage{}, err
	}
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return DeliveryPage{}, apierr.New(apierr.Invalid, "limit: must be 1 to %d", MaxPageSize)
	}
	before := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	beforeID := ""
	if cursor != "" {
		ts, cid, ok := strings.Cut(cursor, "_")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil || !validate.UUID(cid) {
			return DeliveryPage{}, apierr.New(apierr.Invalid, "cursor: not a cursor this API returned")
		}
		before, beforeID = time.UnixMicro(n).UTC(), cid
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE webhook_id = $1 AND (created_at, id::text) < ($2, $3)
		ORDER BY created_at DESC, id::text DESC LIMIT $4`, id, before, beforeID, limit+1)
	if err != nil {
		return DeliveryPage{}, fmt.Errorf("deliveries of webhook %s: %w", id, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return DeliveryPage{}, fmt.Errorf("deliveries of webhook %s: %w", id, err)
	}
	var p DeliveryPage
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		p.NextCursor = strconv.FormatInt(last.CreatedAt.UnixMicro(), 10) + "_" + last.ID
	}
	for i := range items {
		if items[i].Attempts, err = s.attempts(ctx, items[i].ID); err != nil {
			return DeliveryPage{}, err
		}
	}
	p.Items = items
	return p, nil
}

func (s *Service) attempts(ctx context.Context, deliveryID string) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, status_code, error, duration_ms FROM webhook_attempts
		WHERE delivery_id = $1 ORDER BY id`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts of delivery %s: %w", deliveryID, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Attempt])
}

// Resend puts delivery d of userID's endpoint id back in the queue: due now,
// retried for another WebhookWindow, whatever its state was. Another
// user's endpoint or delivery is apierr NotFound; a delivery already pending
// is returned as it is.
func (s *Service) Resend(ctx context.Context, userID, id, d string) (Delivery, error) {
	if _, err := s.WebhookOf(ctx, userID, id); err != nil {
		return Delivery{}, err
	}
	if !validate.UUID(d) {
		return Delivery{}, apierr.New(apierr.NotFound, "no such delivery")
	}
	now := s.nowDB()
	out, err := scanDelivery(s.pool.QueryRow(ctx, `
		UPDATE webhook_deliveries
		   SET status = 'pending', next_attempt_at = CASE WHEN status = 'pending' THEN next_attempt_at ELSE $3 END,
		       expires_at = CASE WHEN status = 'pending' THEN expires_at ELSE $4 END, delivered_at = NULL
		 WHERE id = $1 AND webhook_id = $2
		RETURNING `+deliveryColumns, d, id, now, now.Add(s.cfg.WebhookWindow)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Delivery{}, apierr.New(apierr.NotFound, "no such delivery")
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("resend delivery %s: %w", d, err)
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, '')`, DeliveryChannel); err != nil {
		s.log.WarnContext(ctx, "delivery worker not woken; it polls", "err", err)
	}
	out.Attempts, err = s.attempts(ctx, d)
	return out, err
}

// maxResponseBytes is how much of an endpoint's answer is read.
const maxResponseBytes = 4 << 10

// sendDueDelivery claims one due delivery, posts it, records the attempt and
// the outcome: delivered on a 2xx answer; otherwise retried after
// WebhookBackoff × 2^(attempts-1) (at most WebhookMaxBackoff), or failed
// when the next attempt would fall after the delivery's expiry. The row
// stays locked while it is sent. It reports false when nothing was due.
func (s *Service) sendDueDelivery(ctx context.Context) (bool, error) {
	found := false
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		now := s.nowDB()
		var (
			id, typ, target, secret string
			payload                 []byte
			attempts                int
			expires                 time.Time
		)
		err := tx.QueryRow(ctx, `
			SELECT d.id, d.type, d.payload, d.attempts, d.expires_at, w.url, w.secret
			  FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			 WHERE d.status = 'pending' AND d.next_attempt_at <= $1
			 ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED`, now).
			Scan(&id, &typ, &payload, &attempts, &expires, &target, &secret)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim a webhook delivery: %w", err)
		}
		found = true
		start := time.Now()
		code, sendErr := s.hooks.post(ctx, target, secret, id, typ, payload, now)
		took := int(time.Since(start).Milliseconds())
		errText := ""
		if sendErr != nil {
			errText = sendErr.Error()
		} else if code/100 != 2 {
			errText = fmt.Sprintf("endpoint answered %d", code)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, at, status_code, error, duration_ms)
			VALUES ($1, $2, $3, $4, $5)`, id, now, code, errText, took); err != nil {
			return fmt.Errorf("record attempt of delivery %s: %w", id, err)
		}
		attempts++
		if errText == "" {
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'delivered', attempts = $2, delivered_at = $3, last_error = ''
				WHERE id = $1`, id, attempts, now)
			return err
		}
		wait := s.cfg.WebhookBackoff << min(attempts-1, 30)
		if wait > s.cfg.WebhookMaxBackoff || wait <= 0 {
			wait = s.cfg.WebhookMaxBackoff
		}
		next := now.Add(wait)
		if next.After(expires) {
			s.log.WarnContext(ctx, "webhook delivery given up after its retry window", "delivery_id", id, "attempts", attempts, "err", errText)
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1`,
				id, attempts, errText)
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET attempts = $2, last_error = $3, next_attempt_at = $4 WHERE id = $1`,
			id, attempts, errText, next)
		return err
	})
	return found, err
}

// post sends one signed delivery and returns the endpoint's status code.
func (c *webhookClient) post(ctx context.Context, target, secret, deliveryID, typ string, payload []byte, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cloudphone-webhooks/1")
	req.Header.Set(webhooksig.Header, webhooksig.Sign(secret, now, payload))
	req.Header.Set(EventHeader, typ)
	req.Header.Set(DeliveryHeader, deliveryID)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	return resp.StatusCode, nil
}
