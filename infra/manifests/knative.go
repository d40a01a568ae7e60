package manifests

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/cloudphone/cloudphone/shared/function"
)

// SecretsDir is where a Knative Service mounts its secret files; the runtime
// finds it through CLOUDPHONE_SECRETS_DIR.
const SecretsDir = "/etc/cloudphone/secrets"

// Keys of the platform Secret that every function receives as environment.
const (
	SecretKeyDatabaseURL = "database-url"
	SecretKeyRedisURL    = "redis-url"
)

// DefaultConcurrencyTarget is the soft concurrency target of a function that
// leaves function.Spec.Concurrency zero (Knative's own default).
const DefaultConcurrencyTarget = 100

// labels are the identifying labels of a function's objects.
func labels(s function.Spec) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":    s.Name,
		"app.kubernetes.io/part-of": "cloudphone",
		"cloudphone.dev/context":    s.Context,
		"cloudphone.dev/kind":       string(s.Kind),
	}
}

// service renders the Knative Service of one function. Autoscaling sits on
// the revision template (Knative rejects it on the Service); the container
// runs as non-root with a read-only root filesystem (an emptyDir holds /tmp),
// no capabilities and the runtime seccomp profile; functions without public
// routes are visible inside the cluster only.
func service(s function.Spec, o Options) *servingv1.Service {
	target := s.Concurrency
	if target == 0 {
		target = DefaultConcurrencyTarget
	}
	// The hard limit leaves room above the soft target so bursts queue in
	// the pod briefly instead of failing; a target of 1 is a singleton worker.
	hard := int64(min(2*target, 1000))
	if target == 1 {
		hard = 1
	}
	meta := labels(s)
	if !s.Public() {
		meta["networking.knative.dev/visibility"] = "cluster-local"
	}
	tmo := int64(timeout(s))

	env := []corev1.EnvVar{
		{Name: "FUNCTION", Value: s.Name},
		{Name: "LISTEN_ADDRESS", Value: ":" + strconv.Itoa(Port)},
		{Name: "BROKER_URL", Value: o.BrokerURL},
		// Eventing's Broker delivers with its own identity and enforces the
		// EventPolicies; the event functions are cluster-local.
		{Name: "CLOUDPHONE_EVENT_AUTH", Value: "eventing"},
		// Events are sent with the pod's projected service-account token
		// for the Broker: the identity its context's EventPolicy names.
		{Name: "CLOUDPHONE_EVENT_TOKEN_FILE", Value: EventTokenDir + "/" + eventTokenPath},
		// The user context's internal quota API, which the device context calls.
		{Name: "CLOUDPHONE_USER_URL", Value: "http://user-quota-internal." + o.Namespace + ".svc.cluster.local"},
		// Billing's internal funds API, which the device context asks before a phone starts.
		{Name: "CLOUDPHONE_BILLING_URL", Value: "http://billing-funds-internal." + o.Namespace + ".svc.cluster.local"},
		// Metrics on a port of their own, for the cluster's scraper only.
		{Name: "CLOUDPHONE_METRICS_ADDR", Value: ":" + strconv.Itoa(MetricsPort)},
		{Name: "read_timeout", Value: strconv.Itoa(timeout(s)+5) + "s"},
		{Name: "write_timeout", Value: strconv.Itoa(timeout(s)+10) + "s"},
		secretEnv("DATABASE_URL", o.SecretName, SecretKeyDatabaseURL),
		secretEnv("REDIS_URL", o.SecretName, SecretKeyRedisURL),
	}
	if s.Context == "device" {
		// The app context's internal download API, which the device context
		// calls for installs.
		env = append(env, corev1.EnvVar{Name: "CLOUDPHONE_APP_URL", Value: "http://app-apps-internal." + o.Namespace + ".svc.cluster.local"})
	}
	mounts := []corev1.VolumeMount{
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "event-token", MountPath: EventTokenDir, ReadOnly: true},
	}
	sizeLimit := resource.MustParse("16Mi")
	tokenLife := int64(EventTokenSeconds)
	volumes := []corev1.Volume{{
		Name:         "tmp",
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &sizeLimit}},
	}, {
		Name: "event-token",
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: BrokerAudience(o.Namespace, o.Broker), ExpirationSeconds: &tokenLife, Path: eventTokenPath,
			},
		}}}},
	}}
	if secrets := o.Deployment(s.Name).Secrets; len(secrets) > 0 {
		env = append(env, corev1.EnvVar{Name: "CLOUDPHONE_SECRETS_DIR", Value: SecretsDir})
		items := make([]corev1.KeyToPath, len(secrets))
		for i, k := range secrets {
			items[i] = corev1.KeyToPath{Key: k, Path: k}
		}
		mode := int32(0o440)
		volumes = append(volumes, corev1.Volume{
			Name: "secrets",
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: o.SecretName, Items: items, DefaultMode: &mode,
			}},
		})
		mounts = append(mounts, corev1.VolumeMount{Name: "secrets", MountPath: SecretsDir, ReadOnly: true})
	}

	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromInt32(Port),
		}}}
	}
	// Readiness is left to Knative's aggressive (sub-second) queue-proxy
	// probing, which allows no period or threshold; liveness runs in kubelet.
	liveness := probe(LivenessPath)
	liveness.PeriodSeconds, liveness.FailureThreshold = 10, 3
	no, yes := false, true

	return &servingv1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "serving.knative.dev/v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      s.Name,
			Namespace: o.Namespace,
			Labels:    meta,
		},
		Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{
			Template: servingv1.RevisionTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: labels(s),
					Annotations: map[string]string{
						"autoscaling.knative.dev/min-scale": strconv.Itoa(s.MinScale),
						"autoscaling.knative.dev/max-scale": strconv.Itoa(s.MaxScale),
						"autoscaling.knative.dev/target":    strconv.Itoa(target),
					},
				},
				Spec: servingv1.RevisionSpec{
					ContainerConcurrency: &hard,
					TimeoutSeconds:       &tmo,
					PodSpec: corev1.PodSpec{
						EnableServiceLinks: &no,
						// The context's identity as an event sender; the
						// Kubernetes API token is not mounted.
						ServiceAccountName:           ServiceAccountName(s.Context),
						AutomountServiceAccountToken: &no,
						Containers: []corev1.Container{{
							Name:  "function",
							Image: o.Image(s.Name),
							Ports: []corev1.ContainerPort{{Name: "http1", ContainerPort: Port, Protocol: corev1.ProtocolTCP}},
							Env:   env,
							Resources: corev1.ResourceRequirements{
								Requests: corev1.ResourceList{
									corev1.ResourceCPU:    resource.MustParse("50m"),
									corev1.ResourceMemory: resource.MustParse("64Mi"),
								},
								Limits: corev1.ResourceList{
									corev1.ResourceCPU:    resource.MustParse("1"),
									corev1.ResourceMemory: resource.MustParse("256Mi"),
								},
							},
							ReadinessProbe: probe(ReadinessPath),
							LivenessProbe:  liveness,
							VolumeMounts:   mounts,
							SecurityContext: &corev1.SecurityContext{
								RunAsNonRoot:             &yes,
								AllowPrivilegeEscalation: &no,
								ReadOnlyRootFilesystem:   &yes,
								Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
								SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
							},
						}},
						Volumes: volumes,
					},
				},
			},
		}},
	}
}

// Where a Service's projected event token is mounted, and how long the
// kubelet makes it valid (it replaces it after 80 % of that).
const (
	EventTokenDir     = "/var/run/secrets/cloudphone/eventing"
	EventTokenSeconds = 3600
	eventTokenPath    = "token"
)

// BrokerAudience is the OIDC audience of the Broker name in namespace, as
// Eventing sets it in the Broker's status (group/kind/namespace/name, lower
// case): the audience of the tokens senders present to it.
func BrokerAudience(namespace, name string) string {
	return strings.ToLower("eventing.knative.dev/broker/" + namespace + "/" + name)
}

// serviceAccount renders the service account the functions of context run
// as. It carries no API token: the functions need only their projected
// event token.
func serviceAccount(context string, o Options) *corev1.ServiceAccount {
	no := false
	return &corev1.ServiceAccount{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: ServiceAccountName(context), Namespace: o.Namespace, Labels: map[string]string{
			"app.kubernetes.io/part-of": "cloudphone", "cloudphone.dev/context": context,
		}},
		AutomountServiceAccountToken: &no,
	}
}

// ServiceAccountFile is the file of the service account of context, beside
// the Services.
func ServiceAccountFile(context string) string {
	return KnativeDir + "/serviceaccount-" + context + ".yaml"
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret},
			Key:                  key,
		},
	}}
}
