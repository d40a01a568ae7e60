package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Notification is one entry of a user's inbox. Seq numbers the user's
// notifications from 1 without gaps, in commit order; it is the id of the
// notification's Server-Sent Event.
type Notification struct {
	ID        string          `json:"id"`
	Seq       int64           `json:"seq"`
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	ReadAt    *time.Time      `json:"read_at"`
}

// Outcome says what Record did with an event.
type Outcome struct {
	Duplicate bool          // the event was recorded before: nothing done
	InApp     *Notification // the inbox entry, when in-app is on
	Email     bool          // an email was queued
	Webhooks  int           // webhook deliveries queued
}

// DeliveryChannel is the Postgres LISTEN/NOTIFY channel on which Record
// wakes the delivery worker when it queued an email or a webhook delivery.
const DeliveryChannel = "notification_delivery"

// Record turns e, one of the consumed facts (see Kinds), into its user's
// notification on every channel the user has on: the inbox entry, a queued
// email (when the user's address is known) and a queued delivery to each of
// the user's active webhooks subscribed to the type, all in one transaction
// with e's inbox claim, so a redelivered e does nothing. After the commit the
// inbox entry is published to the user's live streams; a failed publish is
// logged, and streams catch up from the database. A user.registered event
// also records the user's name and address. An event of another type, or
// whose data cannot be read, is an apierr Unprocessable (permanent); a
// database failure is returned as is (retry).
func (s *Service) Record(ctx context.Context, e event.Event) (Outcome, error) {
	k, ok := KindOf(e.Type())
	if !ok {
		return Outcome{}, apierr.New(apierr.Unprocessable, "event type %q makes no notification", e.Type())
	}
	userID, data, r, err := k.decode(e)
	if err != nil {
		return Outcome{}, apierr.Wrap(apierr.Unprocessable, err, "%v", err)
	}
	if !validate.UUID(userID) {
		return Outcome{}, apierr.New(apierr.Unprocessable, "%s event %s: user_id %q is not a uuid", e.Type(), e.ID(), userID)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Outcome{}, apierr.Wrap(apierr.Unprocessable, err, "encode %s data", e.Type())
	}
	var out Outcome
	err = db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		out = Outcome{}
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil {
			return err
		}
		if !first {
			out.Duplicate = true
			return nil
		}
		username, email, err := s.recipient(ctx, tx, userID, data)
		if err != nil {
			return err
		}
		ch, err := channelsOf(ctx, tx, userID, k)
		if err != nil {
			return err
		}
		now := s.nowDB()
		if ch.InApp {
			n, err := insertNotification(ctx, tx, userID, k.Type, r, raw, e.ID(), now)
			if err != nil {
				return err
			}
			out.InApp = &n
		}
		if ch.Email && email != "" {
			text, html := renderEmail(emailData{Type: k.Type, Title: r.Title, Body: r.Body, Username: username})
			tag, err := tx.Exec(ctx, `
				INSERT INTO email_outbox (user_id, event_id, type, to_address, subject, text_body, html_body, next_attempt_at, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
				ON CONFLICT (event_id, user_id) DO NOTHING`,
				userID, e.ID(), k.Type, email, r.Title, text, html, now)
			if err != nil {
				return fmt.Errorf("queue %s email for user %s: %w", k.Type, userID, err)
			}
			out.Email = tag.RowsAffected() == 1
		}
		if ch.Webhook {
			payload, err := json.Marshal(WebhookPayload{ID: e.ID(), Type: k.Type, CreatedAt: now, UserID: userID,
				Title: r.Title, Body: r.Body, Data: raw})
			if err != nil {
				return fmt.Errorf("encode %s webhook payload: %w", k.Type, err)
			}
			tag, err := tx.Exec(ctx, `
				INSERT INTO webhook_deliveries (id, webhook_id, user_id, event_id, type, payload, next_attempt_at, expires_at, created_at)
				SELECT gen_random_uuid(), w.id, w.user_id, $2, $3, $4, $5, $6, $5
				  FROM webhooks w
				 WHERE w.user_id = $1 AND w.active AND $3 = ANY (w.event_types)
				ON CONFLICT (webhook_id, event_id) DO NOTHING`,
				userID, e.ID(), k.Type, payload, now, now.Add(s.cfg.WebhookWindow))
			if err != nil {
				return fmt.Errorf("queue %s webhooks for user %s: %w", k.Type, userID, err)
			}
			out.Webhooks = int(tag.RowsAffected())
		}
		if out.Email || out.Webhooks > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, DeliveryChannel); err != nil {
				return fmt.Errorf("wake the delivery worker: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("record %s event %s: %w", e.Type(), e.ID(), err)
	}
	if out.InApp != nil {
		if err := s.publish(ctx, userID, *out.InApp); err != nil {
			s.log.WarnContext(ctx, "live notification not published; streams catch up from the database",
				"user_id", userID, "seq", out.InApp.Seq, "err", err)
		}
	}
	return out, nil
}

// recipient makes sure userID has a recipients row (a user.registered
// event also sets the name and address) and returns the name and address
// known for the user.
func (s *Service) recipient(ctx context.Context, tx pgx.Tx, userID string, data any) (username, email string, err error) {
	if reg, ok := data.(userevents.Registered); ok {
		err = tx.QueryRow(ctx, `
			INSERT INTO recipients (user_id, username, email) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, email = excluded.email, updated_at = now()
			RETURNING username, email`, userID, reg.Username, reg.Email).Scan(&username, &email)
	} else {
		err = tx.QueryRow(ctx, `
			INSERT INTO recipients (user_id) VALUES ($1)
			ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id
			RETURNING username, email`, userID).Scan(&username, &email)
	}
	if err != nil {
		return "", "", fmt.Errorf("recipient %s: %w", userID, err)
	}
	return username, email, nil
}

// insertNotification numbers the notification with the user's next seq,
// under the recipients row's lock, and inserts it.
func insertNotification(ctx context.Context, tx pgx.Tx, userID, typ string, r Rendered, data []byte, eventID string, now time.Time) (Notification, error) {
	n := Notification{ID: events.NewID(), Type: typ, Title: r.Title, Body: r.Body, Data: data, CreatedAt: now}
	if err := tx.QueryRow(ctx, `UPDATE recipients SET last_seq = last_seq + 1 WHERE user_id = $1 RETURNING last_seq`,
		userID).Scan(&n.Seq); err != nil {
		return Notification{}, fmt.Errorf("number notification of user %s: %w", userID, err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO notifications (id, user_id, seq, type, title, body, data, event_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		n.ID, userID, n.Seq, typ, r.Title, r.Body, data, eventID, now); err != nil {
		return Notification{}, fmt.Errorf("insert notification of user %s: %w", userID, err)
	}
	return n, nil
}

// channelsOf returns the user's channels for k: the stored preference, or
// k's defaults.
func channelsOf(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, userID string, k Kind) (Channels, error) {
	var c Channels
	err := q.QueryRow(ctx, `SELECT in_app, email, webhook FROM preferences WHERE user_id = $1 AND type = $2`,
		userID, k.Type).Scan(&c.InApp, &c.Email, &c.Webhook)
	if errors.Is(err, pgx.ErrNoRows) {
		return k.Defaults, nil
	}
	if err != nil {
		return Channels{}, fmt.Errorf("preferences of user %s for %s: %w", userID, k.Type, err)
	}
	return c, nil
}
