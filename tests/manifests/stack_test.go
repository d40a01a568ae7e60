package manifests_test

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/app/appevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/infra/manifests"
)

// openfaasStack mirrors the stack.yml schema of faas-cli (openfaas/go-sdk
// stack.Services and stack.Function); strict decoding rejects any key the
// real parser would not know.
type openfaasStack struct {
	Version  string `json:"version,omitempty"`
	Provider struct {
		Name    string `json:"name"`
		Gateway string `json:"gateway,omitempty"`
	} `json:"provider"`
	Functions     map[string]openfaasFunction `json:"functions"`
	Configuration *struct {
		Templates []struct {
			Name   string `json:"name"`
			Source string `json:"source,omitempty"`
		} `json:"templates,omitempty"`
		Copy []string `json:"copy,omitempty"`
	} `json:"configuration,omitempty"`
}

type openfaasFunction struct {
	Name                   string             `json:"name,omitempty"`
	Lang                   string             `json:"lang,omitempty"`
	Handler                string             `json:"handler,omitempty"`
	Image                  string             `json:"image"`
	FProcess               string             `json:"fprocess,omitempty"`
	Environment            map[string]string  `json:"environment,omitempty"`
	EnvironmentFile        []string           `json:"environment_file,omitempty"`
	Secrets                []string           `json:"secrets,omitempty"`
	SkipBuild              bool               `json:"skip_build,omitempty"`
	Constraints            *[]string          `json:"constraints,omitempty"`
	Labels                 *map[string]string `json:"labels,omitempty"`
	Annotations            *map[string]string `json:"annotations,omitempty"`
	Limits                 *openfaasResources `json:"limits,omitempty"`
	Requests               *openfaasResources `json:"requests,omitempty"`
	ReadOnlyRootFilesystem bool               `json:"readonly_root_filesystem,omitempty"`
	BuildOptions           []string           `json:"build_options,omitempty"`
	BuildArgs              map[string]string  `json:"build_args,omitempty"`
	Platforms              string             `json:"platforms,omitempty"`
	Namespace              string             `json:"namespace,omitempty"`
}

type openfaasResources struct {
	Memory string `json:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// maxCEFunctions is the OpenFaaS Community Edition function cap.
const maxCEFunctions = 15

var dns1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// unroutedFacts are the facts published for subscribers outside the platform:
// no function consumes them, and the broker accepts and drops them, as
// Knative's does.
var unroutedFacts = map[string]bool{
	appevents.EventUploaded: true, appevents.EventDeleted: true,
}

// stackErrors checks a decoded stack.yml against the OpenFaaS rules and the
// platform's: every catalog function is served by exactly one bundle, every
// bundle sends to the broker, which is there, and every type a bundle emits
// is routed by a Trigger of routed (type → routed).
func stackErrors(st *openfaasStack, routed map[string]bool) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if st.Provider.Name != "openfaas" {
		bad("provider.name %q, want openfaas", st.Provider.Name)
	}
	if st.Version != "" && st.Version != "1.0" {
		bad("version %q, want 1.0", st.Version)
	}
	if len(st.Functions) > maxCEFunctions {
		bad("%d functions, OpenFaaS CE allows %d", len(st.Functions), maxCEFunctions)
	}
	served := map[string]string{}
	for name, fn := range st.Functions {
		if !dns1035.MatchString(name) || len(name) > 63 {
			bad("%s: name is not a DNS-1035 label of at most 63 characters", name)
		}
		if fn.Image == "" {
			bad("%s: no image", name)
		}
		if !fn.SkipBuild {
			bad("%s: skip_build must be true (images are built by make images)", name)
		}
		labels := map[string]string{}
		if fn.Labels != nil {
			labels = *fn.Labels
		}
		lo, errLo := strconv.Atoi(labels["com.openfaas.scale.min"])
		hi, errHi := strconv.Atoi(labels["com.openfaas.scale.max"])
		if errLo != nil || errHi != nil || lo < 1 || hi < lo {
			bad("%s: scale labels min=%q max=%q must be integers with 1 ≤ min ≤ max", name, labels["com.openfaas.scale.min"], labels["com.openfaas.scale.max"])
		}
		ann := map[string]string{}
		if fn.Annotations != nil {
			ann = *fn.Annotations
		}
		if _, ok := ann["schedule"]; ok || ann["topic"] == "cron-function" {
			// The cron-connector's calls carry no sender token: the broker
			// sends the ticks.
			bad("%s: cron-connector annotations; the broker sends the schedules' ticks", name)
		}
		if name == manifests.BrokerFunction {
			if labels["com.openfaas.scale.max"] != "1" {
				bad("%s: more than one replica would send every tick twice", name)
			}
			continue
		}
		if want := manifests.BrokerGateway + "/function/" + manifests.BrokerFunction; fn.Environment["BROKER_URL"] != want {
			bad("%s: BROKER_URL %q, want the broker's address %s", name, fn.Environment["BROKER_URL"], want)
		}
		members := strings.Split(fn.Environment["FUNCTIONS"], ",")
		for _, m := range members {
			s, ok := catalog.ByName(m)
			if !ok {
				bad("%s: FUNCTIONS names %q, which is not in the catalog", name, m)
				continue
			}
			if other, dup := served[m]; dup {
				bad("%s is served by both %s and %s", m, other, name)
			}
			served[m] = name
			for _, typ := range append(slices.Clone(s.Emits), s.Replies...) {
				if !routed[typ] && !unroutedFacts[typ] {
					bad("%s: %s emits %s, which no Trigger routes", name, m, typ)
				}
			}
		}
	}
	for typ := range unroutedFacts {
		if routed[typ] {
			bad("%s is routed now: take it off unroutedFacts", typ)
		}
	}
	for _, s := range catalog.All() {
		if _, ok := served[s.Name]; !ok {
			bad("%s is not served by any OpenFaaS function", s.Name)
		}
	}
	if _, ok := st.Functions[manifests.BrokerFunction]; !ok {
		bad("no %s: the bundles' events would go nowhere", manifests.BrokerFunction)
	}
	return errs
}

// routedTypes are the event types the rendered Triggers route.
func routedTypes(t *testing.T, r repo) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, tr := range decodeEventing(t, r).triggers {
		for _, f := range tr.Spec.Filters {
			for _, v := range f.Exact {
				out[v] = true
			}
		}
	}
	return out
}

func decodeStack(t *testing.T, b []byte) *openfaasStack {
	t.Helper()
	st := &openfaasStack{}
	if err := yaml.UnmarshalStrict(b, st); err != nil {
		t.Fatalf("strict decode of stack.yml: %v", err)
	}
	return st
}

func TestStackIsAValidOpenFaaSStack(t *testing.T) {
	t.Parallel()
	r := setup(t)
	st := decodeStack(t, r.files[manifests.StackFile])
	for _, e := range stackErrors(st, routedTypes(t, r)) {
		t.Error(e)
	}
	for bundle, specs := range catalog.Bundles() {
		fn, ok := st.Functions[bundle]
		if !ok {
			t.Errorf("bundle %s missing from stack.yml", bundle)
			continue
		}
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		if got := strings.Split(fn.Environment["FUNCTIONS"], ","); !slices.Equal(got, names) {
			t.Errorf("%s: FUNCTIONS=%v, want %v", bundle, got, names)
		}
	}
}

func TestStackRulesRejectBrokenStacks(t *testing.T) {
	t.Parallel()
	r := setup(t)
	cases := []struct {
		name   string
		change func(*openfaasStack)
		want   string
	}{
		{"legacy provider", func(s *openfaasStack) { s.Provider.Name = "faas" }, "want openfaas"},
		{"name not DNS-1035", func(s *openfaasStack) {
			s.Functions["1-user"] = s.Functions["cloudphone-user"]
			delete(s.Functions, "cloudphone-user")
		}, "DNS-1035"},
		{"more than 15 functions", func(s *openfaasStack) {
			for i := range 16 {
				s.Functions[fmt.Sprintf("extra-%d", i)] = openfaasFunction{Image: "x", SkipBuild: true}
			}
		}, "CE allows 15"},
		{"cron-connector annotations", func(s *openfaasStack) {
			fn := s.Functions["cloudphone-user"]
			ann := map[string]string{"topic": "cron-function", "schedule": "*/5 * * * *"}
			fn.Annotations = &ann
			s.Functions["cloudphone-user"] = fn
		}, "the broker sends the schedules' ticks"},
		{"bundle without the broker's address", func(s *openfaasStack) {
			fn := s.Functions["cloudphone-billing"]
			env := maps.Clone(fn.Environment)
			delete(env, "BROKER_URL")
			fn.Environment = env
			s.Functions["cloudphone-billing"] = fn
		}, "want the broker's address"},
		{"no broker", func(s *openfaasStack) { delete(s.Functions, manifests.BrokerFunction) }, "events would go nowhere"},
		{"bundle emits a type no Trigger routes", func(*openfaasStack) {}, "which no Trigger routes"},
		{"function served twice", func(s *openfaasStack) {
			fn := s.Functions["cloudphone-scheduler"]
			env := map[string]string{"FUNCTIONS": "dead-letter,auth-login"}
			fn.Environment = env
			s.Functions["cloudphone-scheduler"] = fn
		}, "served by both"},
		{"function not served", func(s *openfaasStack) { delete(s.Functions, "cloudphone-user") }, "not served"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := decodeStack(t, r.files[manifests.StackFile])
			tc.change(st)
			routed := routedTypes(t, r)
			if tc.name == "bundle emits a type no Trigger routes" {
				delete(routed, userevents.EventRegistered)
			}
			if errs := stackErrors(st, routed); !containsAny(errs, tc.want) {
				t.Fatalf("want an error mentioning %q, got %v", tc.want, errs)
			}
		})
	}
	if err := yaml.UnmarshalStrict([]byte("provider: {name: openfaas}\nfunctions: {a: {image: x, skip_biuld: true}}\n"), &openfaasStack{}); err == nil {
		t.Error("strict decoding accepted the misspelt key skip_biuld")
	}
}

func TestParseCronAcceptsStandardAndRefusesOthers(t *testing.T) {
	t.Parallel()
	for expr, ok := range map[string]bool{
		"*/5 * * * *":     true,
		"0 3 * * 1-5":     true,
		"0,30 8-18 1 * 0": true,
		"* * * *":         false,
		"* * * * * *":     false,
		"60 * * * *":      false,
		"* 24 * * *":      false,
		"* * 0 * *":       false,
		"* * * * 8":       false,
		"*/0 * * * *":     false,
		"5-1 * * * *":     false,
		"@hourly":         false,
		"0 0 * JAN *":     false,
	} {
		if err := manifests.ParseCron(expr); (err == nil) != ok {
			t.Errorf("ParseCron(%q) = %v, want ok=%v", expr, err, ok)
		}
	}
}
