// Package registry builds every function of the catalog from the process's
// shared resources. The catalog says what a function is; the registry says how
// to make it. A process (one Knative Service, one OpenFaaS bundle, or the whole
// local platform) asks it for the entries it hosts.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"maps"

	"github.com/cloudphone/cloudphone/functions/catalog"
	"github.com/cloudphone/cloudphone/shared/platform"
)

// builders makes each catalog function, context by context; every catalog
// entry has one.
var builders = mergeBuilders(userBuilders, schedulerBuilders, billingBuilders, deviceBuilders, deviceRuntimeBuilders, consoleBuilders)

func mergeBuilders(parts ...map[string]platform.Builder) map[string]platform.Builder {
	out := map[string]platform.Builder{}
	for _, p := range parts {
		maps.Copy(out, p)
	}
	return out
}

// Entries returns every function of the catalog, ready to host.
func Entries() []platform.Entry {
	specs := catalog.All()
	out := make([]platform.Entry, 0, len(specs))
	for _, s := range specs {
		b, ok := builders[s.Name]
		if !ok {
			panic(fmt.Sprintf("registry: catalog function %s has no builder", s.Name))
		}
		out = append(out, platform.Entry{Spec: s, Build: b})
	}
	return out
}

// Entry returns the named function, or false when the catalog has none.
func Entry(name string) (platform.Entry, bool) {
	s, ok := catalog.ByName(name)
	if !ok {
		return platform.Entry{}, false
	}
	b, ok := builders[name]
	return platform.Entry{Spec: s, Build: b}, ok
}

// Bootstrap returns the local platform's first-start step: it creates the
// admin account when there is none, with adminPassword or, when that is empty,
// a generated password printed once to w.
func Bootstrap(w io.Writer) func(ctx context.Context, r *platform.Resources, adminPassword string) error {
	return func(ctx context.Context, r *platform.Resources, adminPassword string) error {
		svc, err := userService(ctx, r)
		if err != nil {
			return err
		}
		generated := adminPassword == ""
		if generated {
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			adminPassword = base64.RawURLEncoding.EncodeToString(b)
		}
		created, err := svc.EnsureAdmin(ctx, adminPassword)
		if err != nil {
			return err
		}
		if created && generated {
			fmt.Fprintf(w, "\nCreated the admin account. Username: admin  Password: %s  (shown once; set CLOUDPHONE_ADMIN_PASSWORD to choose it)\n", adminPassword)
		}
		return nil
	}
}
