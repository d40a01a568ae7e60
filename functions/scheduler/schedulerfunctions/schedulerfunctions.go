// Package schedulerfunctions lists the scheduler context's functions: the one
// place the context declares what it deploys. The catalog concatenates every
// context's lists.
package schedulerfunctions

import (
	"github.com/cloudphone/cloudphone/functions/scheduler/admindeadletters"
	"github.com/cloudphone/cloudphone/functions/scheduler/deadletter"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Entries are the functions of the scheduler context: the dead-letter sink
// and the administrators' view of what it kept.
var Entries = []function.Entry{
	deadletter.Entry,
	admindeadletters.Entry,
}
