package billing

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/db"
)

// DebitForTest takes amount from userID's balance in a transaction of its
// own, as the saga's debit step does.
func (s *Service) DebitForTest(ctx context.Context, userID string, amount int64, ref string) error {
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := s.post(ctx, tx, posting{userID: userID, amount: -amount, kind: KindUsage, reference: ref})
		return err
	})
}
