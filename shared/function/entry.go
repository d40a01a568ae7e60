package function

import (
	"context"

	"github.com/cloudphone/cloudphone/shared/process"
)

// Builder makes a function once the process's resources can be used. It runs
// in the function's Start, so a function opens its pools lazily and functions
// of one process open theirs in parallel.
type Builder func(ctx context.Context, r *process.Resources) (any, error)

// Entry is a function as a host knows it: its catalog spec and its builder.
type Entry struct {
	Spec  Spec
	Build Builder
}
