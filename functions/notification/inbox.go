package notification

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Page sizes of List.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Page is one page of a user's inbox, newest first. NextCursor, when not
// empty, fetches the next (older) page.
type Page struct {
	Items       []Notification `json:"items"`
	NextCursor  string         `json:"next_cursor,omitempty"`
	UnreadCount int64          `json:"unread_count"`
}

// ListQuery selects a page of the inbox.
type ListQuery struct {
	Limit      int    // 1–MaxPageSize; 0 means DefaultPageSize
	Cursor     string // a Page's NextCursor, or "" for the newest
	UnreadOnly bool
}

const notificationColumns = `id, seq, type, title, body, data, created_at, read_at`

func scanNotification(row pgx.Row) (Notification, error) {
	var n Notification
	err := row.Scan(&n.ID, &n.Seq, &n.Type, &n.Title, &n.Body, &n.Data, &n.CreatedAt, &n.ReadAt)
	return n, err
}

// List returns a page of userID's own notifications, newest first. A bad
// limit or cursor is an apierr Invalid.
func (s *Service) List(ctx context.Context, userID string, q ListQuery) (Page, error) {
	if q.Limit == 0 {
		q.Limit = DefaultPageSize
	}
	if q.Limit < 1 || q.Limit > MaxPageSize {
		return Page{}, apierr.New(apierr.Invalid, "limit: must be 1 to %d", MaxPageSize)
	}
	before := int64(1<<63 - 1)
	if q.Cursor != "" {
		c, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || c < 1 {
			return Page{}, apierr.New(apierr.Invalid, "cursor: not a cursor this API returned")
		}
		before = c
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+notificationColumns+` FROM notifications
		 WHERE user_id = $1 AND seq < $2 AND ($3 = false OR read_at IS NULL)
		 ORDER BY seq DESC LIMIT $4`, userID, before, q.UnreadOnly, q.Limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("list notifications of user %s: %w", userID, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) { return scanNotification(r) })
	if err != nil {
		return Page{}, fmt.Errorf("list notifications of user %s: %w", userID, err)
	}
	p := Page{Items: items}
	if len(items) > q.Limit {
		p.Items = items[:q.Limit]
		p.NextCursor = strconv.FormatInt(p.Items[q.Limit-1].Seq, 10)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL`,
		userID).Scan(&p.UnreadCount); err != nil {
		return Page{}, fmt.Errorf("count unread notifications of user %s: %w", userID, err)
	}
	return p, nil
}

// MarkRead marks userID's notification id read (once: a second call keeps
// the first time) and returns it. Another user's notification, or none, is
// an apierr NotFound.
func (s *Service) MarkRead(ctx context.Context, userID, id string) (Notification, error) {
	if !validate.UUID(id) {
		return Notification{}, apierr.New(apierr.NotFound, "no such notification")
	}
	n, err := scanNotification(s.pool.QueryRow(ctx, `
		UPDATE notifications SET read_at = coalesce(read_at, $3)
		 WHERE id = $1 AND user_id = $2
		RETURNING `+notificationColumns, id, userID, s.nowDB()))
	if errors.Is(err, pgx.ErrNoRows) {
		return Notification{}, apierr.New(apierr.NotFound, "no such notification")
	}
	if err != nil {
		return Notification{}, fmt.Errorf("mark notification %s read: %w", id, err)
	}
	return n, nil
}

// ReadAll is the answer of MarkAllRead.
type ReadAll struct {
	Updated int64 `json:"updated"`
}

// MarkAllRead marks every unread notification of userID read.
func (s *Service) MarkAllRead(ctx context.Context, userID string) (ReadAll, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL`,
		userID, s.nowDB())
	if err != nil {
		return ReadAll{}, fmt.Errorf("mark notifications of user %s read: %w", userID, err)
	}
	return ReadAll{Updated: tag.RowsAffected()}, nil
}
