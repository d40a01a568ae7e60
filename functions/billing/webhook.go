package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

// ErrNoSecret refuses every webhook while no secret is configured (logged;
// the caller sees 401 unauthorized, as for a signature webhooksig.Verify
// refuses).
var ErrNoSecret = errors.New("no payment webhook secret is configured")

// webhookRefusedError is the one answer to every refused signature, so a
// caller learns nothing about which check failed.
func webhookRefusedError(cause error) error {
	return apierr.Wrap(apierr.Unauthorized, cause, "the webhook signature is missing, wrong or stale")
}

// VerifySignature checks header (webhooksig.Header) against body with the
// configured secret and tolerance. It returns an apierr Unauthorized whose
// cause is ErrNoSecret or one of webhooksig's reasons; the secret never
// appears in it.
func (s *Service) VerifySignature(header string, body []byte) error {
	if s.cfg.WebhookSecret == "" {
		return webhookRefusedError(ErrNoSecret)
	}
	if err := webhooksig.Verify(s.cfg.WebhookSecret, header, body, s.now(), s.cfg.WebhookTolerance); err != nil {
		return webhookRefusedError(err)
	}
	return nil
}

// WebhookTypeTopUp is the only provider event type that moves money.
const WebhookTypeTopUp = "topup.succeeded"

// WebhookEvent is the payment provider's event (the webhook's body).
type WebhookEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		UserID   string `json:"user_id"`
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
	} `json:"data"`
}

// Outcomes of a webhook.
const (
	WebhookCredited  = "credited"
	WebhookDuplicate = "duplicate"
	WebhookIgnored   = "ignored"
)

// WebhookResult is the answer to a webhook.
type WebhookResult struct {
	Status string `json:"status"`
	Entry  *Entry `json:"entry,omitempty"`
}

// TopUp applies a verified provider event: a topup.succeeded credits its
// amount as a topup entry, once per provider event id (a replay is answered
// duplicate and moves nothing); other types are ignored. A top-up for a user
// id the user context does not know is Unprocessable, and nothing is written.
func (s *Service) TopUp(ctx context.Context, ev WebhookEvent) (WebhookResult, error) {
	var p validate.Problems
	p.Check(ev.ID != "" && len(ev.ID) <= 128 && validate.NoControlChars(ev.ID), "id", "must be 1 to 128 characters")
	p.Check(ev.Type != "", "type", "is required")
	if err := p.Err(); err != nil {
		return WebhookResult{}, err
	}
	if ev.Type != WebhookTypeTopUp {
		return WebhookResult{Status: WebhookIgnored}, nil
	}
	p.Check(validate.UUID(ev.Data.UserID), "data.user_id", "must be a user id (UUID)")
	p.Check(ev.Data.Amount > 0 && ev.Data.Amount <= MaxCredit, "data.amount", "must be 1 to 100000000000 minor units")
	p.Check(ev.Data.Currency == s.cfg.Currency, "data.currency", "must be "+s.cfg.Currency)
	if err := p.Err(); err != nil {
		return WebhookResult{}, err
	}
	// A payment for nobody is the provider's mistake: 422 tells it not to
	// retry, and nothing is recorded (a later delivery for a user that
	// then exists is credited).
	if err := s.known(ctx, ev.Data.UserID, apierr.Unprocessable, "data.user_id"); err != nil {
		return WebhookResult{}, err
	}
	var (
		e   Entry
		dup bool
	)
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT true FROM payments WHERE provider_event_id = $1`, ev.ID).Scan(&dup)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if e, err = s.post(ctx, tx, posting{userID: ev.Data.UserID, amount: ev.Data.Amount, kind: KindTopUp,
			reference: "payment:" + ev.ID, reason: "top-up"}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO payments (provider_event_id, user_id, amount, currency, ledger_id) VALUES ($1, $2, $3, $4, $5)`,
			ev.ID, ev.Data.UserID, ev.Data.Amount, ev.Data.Currency, e.ID)
		return err
	})
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		dup, err = true, nil // a concurrent delivery of the same event won
	}
	if err != nil {
		return WebhookResult{}, fmt.Errorf("top up %s: %w", ev.ID, err)
	}
	if dup {
		s.log.InfoContext(ctx, "payment webhook replayed", "provider_event_id", ev.ID)
		return WebhookResult{Status: WebhookDuplicate}, nil
	}
	s.log.InfoContext(ctx, "balance topped up", "provider_event_id", ev.ID, "user_id", ev.Data.UserID, "amount", ev.Data.Amount)
	return WebhookResult{Status: WebhookCredited, Entry: &e}, nil
}
