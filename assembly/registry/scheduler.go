package registry

import (
	"context"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/functions/scheduler/deadletter"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

var schedulerBuilders = map[string]function.Builder{
	catalog.DeadLetter: func(ctx context.Context, r *process.Resources) (any, error) {
		pool, err := r.Postgres(ctx, scheduler.Database, inbox.Migrations, scheduler.Migrations)
		if err != nil {
			return nil, err
		}
		return deadletter.New(scheduler.NewDeadLetters(pool), r.Log), nil
	},
}
