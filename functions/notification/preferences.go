package notification

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
)

// Preference is one notification type's channels for a user.
type Preference struct {
	Type string `json:"type"`
	Channels
}

// Preferences is every notification type's channels for a user.
type Preferences struct {
	Preferences []Preference `json:"preferences"`
}

// PreferencesOf returns userID's channels for every notification type, the
// type's defaults where the user chose nothing.
func (s *Service) PreferencesOf(ctx context.Context, userID string) (Preferences, error) {
	rows, err := s.pool.Query(ctx, `SELECT type, in_app, email, webhook FROM preferences WHERE user_id = $1`, userID)
	if err != nil {
		return Preferences{}, fmt.Errorf("preferences of user %s: %w", userID, err)
	}
	stored := map[string]Channels{}
	var (
		typ string
		c   Channels
	)
	_, err = pgx.ForEachRow(rows, []any{&typ, &c.InApp, &c.Email, &c.Webhook}, func() error {
		stored[typ] = c
		return nil
	})
	if err != nil {
		return Preferences{}, fmt.Errorf("preferences of user %s: %w", userID, err)
	}
	out := Preferences{Preferences: make([]Preference, 0, len(kinds))}
	for _, k := range kinds {
		c, ok := stored[k.Type]
		if !ok {
			c = k.Defaults
		}
		out.Preferences = append(out.Preferences, Preference{Type: k.Type, Channels: c})
	}
	return out, nil
}

// PreferenceUpdate sets the channels of some types; a channel left out keeps
// its current value.
type PreferenceUpdate struct {
	Preferences []PreferenceChange `json:"preferences"`
}

// PreferenceChange is the new channels of one type.
type PreferenceChange struct {
	Type    string `json:"type"`
	InApp   *bool  `json:"in_app"`
	Email   *bool  `json:"email"`
	Webhook *bool  `json:"webhook"`
}

// SetPreferences applies u to userID's preferences in one transaction and
// returns them all. An unknown type, a type given twice or an empty update is
// an apierr Invalid, and nothing is changed.
func (s *Service) SetPreferences(ctx context.Context, userID string, u PreferenceUpdate) (Preferences, error) {
	if len(u.Preferences) == 0 {
		return Preferences{}, apierr.New(apierr.Invalid, "preferences: give at least one type")
	}
	seen := map[string]bool{}
	for i, p := range u.Preferences {
		if _, ok := kindByType(p.Type); !ok {
			return Preferences{}, apierr.New(apierr.Invalid, "preferences[%d].type: unknown notification type %q", i, p.Type)
		}
		if seen[p.Type] {
			return Preferences{}, apierr.New(apierr.Invalid, "preferences[%d].type: %q is given twice", i, p.Type)
		}
		seen[p.Type] = true
	}
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		for _, p := range u.Preferences {
			k, _ := kindByType(p.Type)
			c, err := channelsOf(ctx, tx, userID, k)
			if err != nil {
				return err
			}
			if p.InApp != nil {
				c.InApp = *p.InApp
			}
			if p.Email != nil {
				c.Email = *p.Email
			}
			if p.Webhook != nil {
				c.Webhook = *p.Webhook
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO preferences (user_id, type, in_app, email, webhook) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (user_id, type) DO UPDATE
				   SET in_app = excluded.in_app, email = excluded.email, webhook = excluded.webhook, updated_at = now()`,
				userID, p.Type, c.InApp, c.Email, c.Webhook); err != nil {
				return fmt.Errorf("set %s preference of user %s: %w", p.Type, userID, err)
			}
		}
		return nil
	})
	if err != nil {
		return Preferences{}, err
	}
	return s.PreferencesOf(ctx, userID)
}
