package helm

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// TestProductionDefaults: what a production cluster needs from the chart
// with no values at all: the webhook on 10250 (reachable through GKE's and
// other firewalled control planes), a preStop pause, a budget that never
// blocks a drain, CAs that renew without changing key.
func TestProductionDefaults(t *testing.T) {
	helm := chart.HelmBinary(t)
	objs := chart.Render(t, helm, chart.WebhookChart, chart.Options{})

	dep := find(t, objs, "Deployment", "mtls-mtls-webhook")
	ctr := nested[[]any](t, dep, "spec", "template", "spec", "containers")[0].(map[string]any)
	if got := ctr["ports"].([]any)[0].(map[string]any)["containerPort"]; got != int64(10250) {
		t.Errorf("https containerPort = %v, want 10250", got)
	}
	pre, _, _ := unstructured.NestedInt64(ctr, "lifecycle", "preStop", "sleep", "seconds")
	if pre <= 0 {
		t.Errorf("no preStop sleep: lifecycle = %v", ctr["lifecycle"])
	}
	grace := nested[int64](t, dep, "spec", "template", "spec", "terminationGracePeriodSeconds")
	if grace <= pre {
		t.Errorf("terminationGracePeriodSeconds %d <= preStop sleep %d", grace, pre)
	}
	if got := nested[int64](t, dep, "spec", "strategy", "rollingUpdate", "maxUnavailable"); got != 0 {
		t.Errorf("rollingUpdate.maxUnavailable = %d, want 0", got)
	}
	if got := nested[int64](t, dep, "spec", "revisionHistoryLimit"); got != 3 {
		t.Errorf("revisionHistoryLimit = %d, want 3", got)
	}
	if _, found, _ := unstructured.NestedBool(dep.Object, "spec", "template", "spec", "hostNetwork"); found {
		t.Errorf("hostNetwork rendered by default")
	}

	pdb := find(t, objs, "PodDisruptionBudget", "mtls-mtls-webhook")
	if got := nested[string](t, pdb, "spec", "unhealthyPodEvictionPolicy"); got != "AlwaysAllow" {
		t.Errorf("unhealthyPodEvictionPolicy = %q, want AlwaysAllow", got)
	}
	if got := nested[int64](t, pdb, "spec", "minAvailable"); got != 1 {
		t.Errorf("PDB minAvailable = %d, want 1 with 2 replicas", got)
	}

	ca := find(t, objs, "Certificate", "mtls-mtls-webhook-ca")
	if got := nested[string](t, ca, "spec", "privateKey", "rotationPolicy"); got != "Never" {
		t.Errorf("webhook CA rotationPolicy = %q, want Never", got)
	}

	// One replica: no budget at all (minAvailable 1 of 1 blocks every drain).
	single := chart.Render(t, helm, chart.WebhookChart, chart.Options{Set: []string{"replicaCount=1"}})
	for _, o := range single {
		if o.GetKind() == "PodDisruptionBudget" {
			t.Errorf("replicaCount=1 rendered PodDisruptionBudget %s", o.GetName())
		}
	}
}

func TestReleaseNamespaceDefaultRefused(t *testing.T) {
	helm := chart.HelmBinary(t)
	_, err := chart.TemplateOutput(helm, chart.WebhookChart, chart.Options{Namespace: "default"})
	if err == nil || !strings.Contains(err.Error(), `the release namespace is "default"`) ||
		!strings.Contains(err.Error(), "--namespace mtls-system") {
		t.Fatalf("want a refusal naming the default namespace and the fix, got %v", err)
	}
}

// TestOptionalValues renders every value peers offer and checks each lands.
func TestOptionalValues(t *testing.T) {
	helm := chart.HelmBinary(t)
	objs := chart.Render(t, helm, chart.WebhookChart, chart.Options{Set: []string{
		"metrics.serviceMonitor.enabled=true",
		"metrics.serviceMonitor.labels.release=prom",
		"metrics.podMonitor.enabled=true",
		"networkPolicy.enabled=true",
		"imageRegistry=mirror.example.com/ghcr",
		"webhookAnnotations.owner=platform",
		"extraNamespaceSelectorExpressions[0].key=team",
		"extraNamespaceSelectorExpressions[0].operator=In",
		"extraNamespaceSelectorExpressions[0].values[0]=payments",
		"mutatingWebhook.objectSelector.matchLabels.mtls=on",
		"hostNetwork=true",
		"config.port=10260",
		"updateStrategy.type=Recreate",
		"updateStrategy.rollingUpdate=null",
		"revisionHistoryLimit=1",
	}})

	sm := find(t, objs, "ServiceMonitor", "mtls-mtls-webhook")
	if sm.GetLabels()["release"] != "prom" {
		t.Errorf("ServiceMonitor labels = %v", sm.GetLabels())
	}
	ep := nested[[]any](t, sm, "spec", "endpoints")[0].(map[string]any)
	if ep["port"] != "metrics" {
		t.Errorf("ServiceMonitor endpoint = %v", ep)
	}
	find(t, objs, "PodMonitor", "mtls-mtls-webhook")
	np := find(t, objs, "NetworkPolicy", "mtls-mtls-webhook")
	if got := nested[[]any](t, np, "spec", "ingress"); len(got) != 2 {
		t.Errorf("NetworkPolicy ingress = %v", got)
	}

	dep := find(t, objs, "Deployment", "mtls-mtls-webhook")
	spec := nested[map[string]any](t, dep, "spec", "template", "spec")
	if spec["hostNetwork"] != true || spec["dnsPolicy"] != "ClusterFirstWithHostNet" {
		t.Errorf("hostNetwork = %v, dnsPolicy = %v", spec["hostNetwork"], spec["dnsPolicy"])
	}
	ctr := spec["containers"].([]any)[0].(map[string]any)
	if ctr["image"] != "mirror.example.com/ghcr/mtls-demo/mtls-webhook:0.1.0" {
		t.Errorf("image = %v", ctr["image"])
	}
	args := strings.Join(toStrings(ctr["args"].([]any)), " ")
	for _, want := range []string{"--port=10260", "--frontend-image=mirror.example.com/ghcr/mtls-demo/demo-frontend:0.1.0",
		"--backend-image=mirror.example.com/ghcr/mtls-demo/demo-backend:0.1.0"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if got := nested[string](t, dep, "spec", "strategy", "type"); got != "Recreate" {
		t.Errorf("strategy = %q", got)
	}

	configs := 0
	for _, o := range objs {
		kind := o.GetKind()
		if kind != "MutatingWebhookConfiguration" && kind != "ValidatingWebhookConfiguration" {
			continue
		}
		configs++
		if o.GetAnnotations()["owner"] != "platform" {
			t.Errorf("%s %s annotations = %v", kind, o.GetName(), o.GetAnnotations())
		}
		for _, w := range nested[[]any](t, o, "webhooks") {
			wm := w.(map[string]any)
			exprs, _, _ := unstructured.NestedSlice(wm, "namespaceSelector", "matchExpressions")
			last, _ := exprs[len(exprs)-1].(map[string]any)
			_, hasObj := wm["objectSelector"]
			if wm["name"] == "verify.mtls.demo" {
				// The guard: its own scope, never the injection's knobs.
				if len(exprs) != 1 || last["key"] != "kubernetes.io/metadata.name" || hasObj {
					t.Errorf("verify.mtls.demo: namespaceSelector %v, objectSelector present = %v; want the guard's name-only selector and no objectSelector", exprs, hasObj)
				}
				continue
			}
			if last["key"] != "team" {
				t.Errorf("%s webhook %s: extra namespace expression missing: %v", kind, wm["name"], exprs)
			}
			if pods := wm["name"] == "inject.mtls.demo"; hasObj != pods {
				t.Errorf("%s webhook %s: objectSelector present = %v", kind, wm["name"], hasObj)
			}
		}
	}
	if configs != 3 {
		t.Errorf("%d webhook configurations, want 3 (mutating, validating pods, workloads)", configs)
	}
	for _, o := range objs {
		if o.GetKind() == "ValidatingAdmissionPolicyBinding" {
			exprs, _, _ := unstructured.NestedSlice(o.Object, "spec", "matchResources", "namespaceSelector", "matchExpressions")
			last, _ := exprs[len(exprs)-1].(map[string]any)
			if strings.HasSuffix(o.GetName(), "-csi-guard") {
				if len(exprs) != 1 || last["key"] != "kubernetes.io/metadata.name" {
					t.Errorf("binding %s: the guard's selector is %v, want the name-only one", o.GetName(), exprs)
				}
				continue
			}
			if last["key"] != "team" {
				t.Errorf("binding %s: extra namespace expression missing: %v", o.GetName(), exprs)
			}
		}
	}
}

// TestDemoPKI: the demo's CA is two-tier so that its issuing key can rotate
// without an outage: the root never changes key, the issuing CA does.
func TestDemoPKI(t *testing.T) {
	helm := chart.HelmBinary(t)
	objs := chart.Render(t, helm, chart.DemoChart, chart.Options{Release: "demo", Namespace: "shop"})
	root := find(t, objs, "Certificate", "demo-root-ca")
	if got := nested[string](t, root, "spec", "privateKey", "rotationPolicy"); got != "Never" {
		t.Errorf("root rotationPolicy = %q, want Never", got)
	}
	issuing := find(t, objs, "Certificate", "demo-ca")
	if got := nested[string](t, issuing, "spec", "issuerRef", "name"); got != "demo-root-ca" {
		t.Errorf("issuing CA signed by %q, want the root Issuer demo-root-ca", got)
	}
	if got := nested[bool](t, issuing, "spec", "isCA"); !got {
		t.Errorf("issuing CA is not isCA")
	}
	if got := nested[string](t, find(t, objs, "Issuer", "demo-ca"), "spec", "ca", "secretName"); got != "demo-ca-tls" {
		t.Errorf("demo-ca Issuer signs with %q", got)
	}
}
