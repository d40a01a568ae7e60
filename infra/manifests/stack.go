package manifests

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Stack mirrors the OpenFaaS stack.yml schema (openfaas/go-sdk stack.Services)
// for the fields the platform uses.
type Stack struct {
	Version   string                   `json:"version"`
	Provider  StackProvider            `json:"provider"`
	Functions map[string]StackFunction `json:"functions"`
}

// StackProvider is the stack.yml provider block.
type StackProvider struct {
	Name    string `json:"name"`
	Gateway string `json:"gateway"`
}

// StackFunction is one OpenFaaS function: a bundle of catalog functions.
type StackFunction struct {
	Image                  string            `json:"image"`
	SkipBuild              bool              `json:"skip_build"`
	ReadOnlyRootFilesystem bool              `json:"readonly_root_filesystem"`
	Environment            map[string]string `json:"environment,omitempty"`
	Secrets                []string          `json:"secrets,omitempty"`
	Labels                 map[string]string `json:"labels,omitempty"`
	Annotations            map[string]string `json:"annotations,omitempty"`
	Requests               *StackResources   `json:"requests,omitempty"`
	Limits                 *StackResources   `json:"limits,omitempty"`
}

// StackResources is the memory/cpu block of requests and limits.
type StackResources struct {
	Memory string `json:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// OpenFaaSDefaultMaxScale is OpenFaaS' own replica cap, used for bundles
// whose functions are all unbounded.
const OpenFaaSDefaultMaxScale = 20

// BrokerFunction is the OpenFaaS function of the deployable broker
// (infra/cmd/broker), and BrokerGateway where it reaches the bundles.
const (
	BrokerFunction = "cloudphone-broker"
	BrokerGateway  = "http://gateway.openfaas:8080"
)

// stack renders stack.yml: one OpenFaaS function per catalog.BundleOf, its
// functions named in FUNCTIONS (comma-separated, catalog order), each sending
// its events to the broker (BROKER_URL), plus the broker itself, which
// delivers them by the Triggers and sends the scheduled functions their ticks
// (a cron-connector call would carry no sender token). OpenFaaS CE cannot
// scale to zero, so every bundle keeps at least one replica; the broker keeps
// exactly one, so that every tick is sent once.
func stack(specs []function.Spec, o Options) *Stack {
	st := &Stack{
		Version:   "1.0",
		Provider:  StackProvider{Name: "openfaas", Gateway: "http://127.0.0.1:8080"},
		Functions: map[string]StackFunction{},
	}
	bundles := catalog.Group(specs)
	for _, name := range sortedKeys(bundles) {
		members := bundles[name]
		var names []string
		// Every bundle signs the sender tokens of its events and checks the
		// broker's.
		secrets := []string{SecretKeyDatabaseURL, SecretKeyRedisURL, function.SecretServiceTokenKey, function.SecretServiceTokenPublicKey}
		minScale, maxScale, tmo, unbounded := 1, 0, 0, false
		for _, s := range members {
			names = append(names, s.Name)
			secrets = append(secrets, o.Deployment(s.Name).Secrets...)
			minScale = max(minScale, s.MinScale)
			if s.MaxScale == 0 {
				unbounded = true
			}
			maxScale = max(maxScale, s.MaxScale)
			tmo = max(tmo, timeout(s))
		}
		if unbounded || maxScale == 0 {
			maxScale = OpenFaaSDefaultMaxScale
		}
		maxScale = max(maxScale, minScale)
		slices.Sort(secrets)
		fn := StackFunction{
			Image:                  o.Image(name),
			SkipBuild:              true,
			ReadOnlyRootFilesystem: true,
			Environment: map[string]string{
				"FUNCTIONS":  strings.Join(names, ","),
				"BROKER_URL": BrokerGateway + "/function/" + BrokerFunction,
				// The user bundle serves the internal quota API the device context calls.
				"CLOUDPHONE_USER_URL": "http://gateway.openfaas:8080/function/cloudphone-user",
				// The app bundle serves the internal download API the device context calls.
				"CLOUDPHONE_APP_URL": "http://gateway.openfaas:8080/function/cloudphone-app",
				// The billing bundle serves the internal funds API the device context calls.
				"CLOUDPHONE_BILLING_URL": "http://gateway.openfaas:8080/function/cloudphone-billing",
				// Metrics on a port of their own, not through the gateway.
				"CLOUDPHONE_METRICS_ADDR": ":9090",
				"read_timeout":            strconv.Itoa(tmo+5) + "s",
				"write_timeout":           strconv.Itoa(tmo+10) + "s",
				"exec_timeout":            strconv.Itoa(tmo) + "s",
			},
			Secrets: slices.Compact(secrets),
			Labels: map[string]string{
				"com.openfaas.scale.min": strconv.Itoa(minScale),
				"com.openfaas.scale.max": strconv.Itoa(maxScale),
				"cloudphone.dev/context": members[0].Context,
			},
			Requests: &StackResources{Memory: "64Mi", CPU: "50m"},
			Limits:   &StackResources{Memory: "256Mi", CPU: "1000m"},
		}
		st.Functions[name] = fn
	}
	st.Functions[BrokerFunction] = StackFunction{
		Image:                  o.Image(BrokerFunction),
		SkipBuild:              true,
		ReadOnlyRootFilesystem: true,
		Environment: map[string]string{
			"BROKER_GATEWAY_URL": BrokerGateway,
			"read_timeout":       "30s",
			"write_timeout":      "30s",
		},
		Secrets: []string{SecretKeyDatabaseURL, function.SecretServiceTokenKey, function.SecretServiceTokenPublicKey},
		Labels: map[string]string{
			"com.openfaas.scale.min": "1",
			"com.openfaas.scale.max": "1",
			"cloudphone.dev/context": "broker",
		},
		Requests: &StackResources{Memory: "64Mi", CPU: "50m"},
		Limits:   &StackResources{Memory: "256Mi", CPU: "1000m"},
	}
	return st
}
