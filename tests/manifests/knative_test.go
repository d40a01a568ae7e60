package manifests_test

import (
	"context"
	"path"
	"strings"
	"testing"

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
	paths := r.under(manifests.KnativeDir)
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
		})
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
