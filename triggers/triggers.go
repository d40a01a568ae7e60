// Package triggers holds the Broker, Triggers, PingSources and EventPolicies
// rendered from the catalog (make manifests), embedded for the deployable
// broker, which routes by the very files Knative applies.
package triggers

import "embed"

// Files are the rendered YAML files.
//
//go:embed *.yaml
var Files embed.FS
