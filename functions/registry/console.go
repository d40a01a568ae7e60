package registry

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/catalog"
	"github.com/cloudphone/cloudphone/functions/console"
	"github.com/cloudphone/cloudphone/shared/platform"
)

var consoleBuilders = map[string]platform.Builder{
	console.Name: func(_ context.Context, r *platform.Resources) (any, error) {
		var routes []string
		for _, s := range catalog.All() {
			routes = append(routes, s.Routes...)
		}
		return console.New(r.Log, console.Options{Routes: routes}), nil
	},
}
