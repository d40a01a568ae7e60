package manifests_test

import (
	"context"
	"path"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingv1alpha1 "knative.dev/eventing/pkg/apis/eventing/v1alpha1"
	"knative.dev/pkg/apis"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/infra/manifests"
)

// validateService decodes a Knative Service strictly and runs the Serving
// webhook's SetDefaults and Validate on it (cluster defaults: max timeout
// 600 s, max containerConcurrency 1000, feature flags at their defaults),
// returning the blocking errors and the warnings separately.
func validateService(t *testing.T, b []byte) (svc *servingv1.Service, errs, warnings *apis.FieldError) {
	t.Helper()
	svc = &servingv1.Service{}
	if err := yaml.UnmarshalStrict(b, svc); err != nil {
		t.Fatalf("strict decode into serving.knative.dev/v1 Service: %v", err)
	}
	ctx := apis.WithinCreate(context.Background())
	svc.SetDefaults(ctx)
	fe := svc.Validate(ctx)
	return svc, fe.Filter(apis.ErrorLevel), fe.Filter(apis.WarningLevel)
}

func TestKnativeServicesPassServingValidation(t *testing.T) {
	t.Parallel()
	r := setup(t)
	paths := r.services()
	if len(paths) != len(catalog.All()) {
		t.Errorf("%d Services in %s for %d catalog functions", len(paths), manifests.KnativeDir, len(catalog.All()))
	}
	for _, p := range paths {
		t.Run(path.Base(p), func(t *testing.T) {
			t.Parallel()
			svc, errs, warnings := validateService(t, r.files[p])
			if errs != nil {
				t.Errorf("Serving rejects it: %v", errs)
			}
			if warnings != nil {
				t.Errorf("Serving warns: %v", warnings)
			}
			name := strings.TrimSuffix(path.Base(p), ".yaml")
			if svc.Name != name || svc.Namespace != "cloudphone" {
				t.Errorf("Service %s/%s in file %s", svc.Namespace, svc.Name, p)
			}
			if _, ok := catalog.ByName(name); !ok {
				t.Errorf("%s is not in the catalog", name)
			}
			for k := range svc.Annotations {
				if strings.HasPrefix(k, "autoscaling.knative.dev/") {
					t.Errorf("autoscaling annotation %s on the Service metadata", k)
				}
			}
			c := svc.Spec.Template.Spec.Containers
			if len(c) != 1 || len(c[0].Ports) != 1 || c[0].Ports[0].ContainerPort != manifests.Port {
				t.Fatalf("want one container with one port %d, got %+v", manifests.Port, c)
			}
			if rp := c[0].ReadinessProbe; rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != manifests.ReadinessPath {
				t.Errorf("readiness probe is not httpGet %s", manifests.ReadinessPath)
			}
			if lp := c[0].LivenessProbe; lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != manifests.LivenessPath {
				t.Errorf("liveness probe is not httpGet %s", manifests.LivenessPath)
			}
			sc := c[0].SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("container must run as non-root on a read-only root filesystem: %+v", sc)
			}
			env := map[string]string{}
			for _, e := range c[0].Env {
				env[e.Name] = e.Value
			}
			if env["FUNCTION"] != name {
				t.Errorf("FUNCTION=%q, want %q", env["FUNCTION"], name)
			}
			spec, _ := catalog.ByName(name)
			checkEventSender(t, r, svc, spec.Context, env)
		})
	}
}

// checkEventSender checks that a Service sends its events as its context:
// it runs as the context's rendered service account (the identity its
// EventPolicy names), has a projected token of that account for the Broker's
// OIDC audience (as Eventing computes it), and sends it (eventing mode, the
// token file on the mount).
func checkEventSender(t *testing.T, r repo, svc *servingv1.Service, context string, env map[string]string) {
	t.Helper()
	ps := svc.Spec.Template.Spec.PodSpec
	account := manifests.ServiceAccountName(context)
	if ps.ServiceAccountName != account {
		t.Errorf("serviceAccountName %q, want %q", ps.ServiceAccountName, account)
	}
	if _, ok := r.files[manifests.ServiceAccountFile(context)]; !ok {
		t.Errorf("service account %s is not rendered in %s", account, manifests.ServiceAccountFile(context))
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("the Kubernetes API token is mounted")
	}
	// Eventing's auth.GetAudience: group/kind/namespace/name, lower case.
	audience := strings.ToLower(eventingv1.SchemeGroupVersion.Group + "/Broker/cloudphone/cloudphone")
	var tokenVolume string
	var tokenPath string
	for _, v := range ps.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if sat := src.ServiceAccountToken; sat != nil {
				if sat.Audience != audience {
					t.Errorf("projected token for audience %q, want the Broker's %q", sat.Audience, audience)
				}
				if sat.ExpirationSeconds == nil || *sat.ExpirationSeconds < 600 {
					t.Errorf("projected token lives %v s, Kubernetes wants at least 600", sat.ExpirationSeconds)
				}
				tokenVolume, tokenPath = v.Name, sat.Path
			}
		}
	}
	if tokenVolume == "" {
		t.Fatalf("no projected service-account token")
	}
	mounted := false
	for _, m := range ps.Containers[0].VolumeMounts {
		if m.Name == tokenVolume && m.ReadOnly && env["CLOUDPHONE_EVENT_TOKEN_FILE"] == m.MountPath+"/"+tokenPath {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("CLOUDPHONE_EVENT_TOKEN_FILE=%q is not the token on a read-only mount of %s", env["CLOUDPHONE_EVENT_TOKEN_FILE"], tokenVolume)
	}
	if env["CLOUDPHONE_EVENT_AUTH"] != "eventing" {
		t.Errorf("CLOUDPHONE_EVENT_AUTH=%q, want eventing", env["CLOUDPHONE_EVENT_AUTH"])
	}
}

// The service accounts are valid Kubernetes objects, one per context, each
// without the API token, and every EventPolicy that names a service account
// names a rendered one.
func TestServiceAccountsAreRenderedForEveryContextAndPolicy(t *testing.T) {
	t.Parallel()
	r := setup(t)
	accounts := map[string]bool{}
	for _, p := range r.under(manifests.KnativeDir) {
		if kind(r.files[p]) != "ServiceAccount" {
			continue
		}
		sa := &corev1.ServiceAccount{}
		if err := yaml.UnmarshalStrict(r.files[p], sa); err != nil {
			t.Fatalf("%s: strict decode into v1 ServiceAccount: %v", p, err)
		}
		if errs := validation.IsDNS1123Subdomain(sa.Name); len(errs) > 0 {
			t.Errorf("%s: name %q: %v", p, sa.Name, errs)
		}
		if sa.Namespace != "cloudphone" || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("%s: want namespace cloudphone and no API token, got %s, %v", p, sa.Namespace, sa.AutomountServiceAccountToken)
		}
		accounts["system:serviceaccount:"+sa.Namespace+":"+sa.Name] = true
	}
	contexts := map[string]bool{}
	for _, s := range catalog.All() {
		contexts[s.Context] = true
	}
	if len(accounts) != len(contexts) {
		t.Errorf("%d service accounts for %d contexts", len(accounts), len(contexts))
	}
	named := 0
	for _, p := range r.under(manifests.TriggerDir) {
		if kind(r.files[p]) != "EventPolicy" {
			continue
		}
		ep := &eventingv1alpha1.EventPolicy{}
		if err := yaml.UnmarshalStrict(r.files[p], ep); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, f := range ep.Spec.From {
			if f.Sub == nil {
				continue
			}
			named++
			if !accounts[*f.Sub] {
				t.Errorf("%s admits %s, which is not a rendered service account", p, *f.Sub)
			}
		}
	}
	if named == 0 {
		t.Errorf("no EventPolicy names a service account")
	}
}

func TestServingValidationRejectsServiceLevelAutoscaling(t *testing.T) {
	t.Parallel()
	b := rendered(t)[manifests.KnativeDir+"/auth-login.yaml"]
	svc, errs, _ := validateService(t, b)
	if errs != nil {
		t.Fatalf("the rendered Service should be valid before the change: %v", errs)
	}
	svc.Annotations = map[string]string{"autoscaling.knative.dev/min-scale": "1"}
	moved, err := yaml.Marshal(svc)
	if err != nil {
		t.Fatal(err)
	}
	_, errs, _ = validateService(t, moved)
	if errs == nil || !strings.Contains(errs.Error(), "autoscaling annotations must be put under") {
		t.Fatalf("Serving accepted autoscaling annotations on the Service metadata (errors: %v)", errs)
	}
}

func TestServingValidationWarnsWithoutSecurityContext(t *testing.T) {
	t.Parallel()
	b := rendered(t)[manifests.KnativeDir+"/auth-login.yaml"]
	svc, _, _ := validateService(t, b)
	svc.Spec.Template.Spec.Containers[0].SecurityContext = nil
	bare, err := yaml.Marshal(svc)
	if err != nil {
		t.Fatal(err)
	}
	_, _, warnings := validateService(t, bare)
	if warnings == nil {
		t.Fatal("Serving gave no warning for a container without a securityContext; the warning check proves nothing")
	}
}
