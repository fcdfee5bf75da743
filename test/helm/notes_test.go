package helm

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// renderNotes renders a chart's NOTES.txt, which `helm template` skips: a
// copy of the chart gets a ConfigMap template holding tpl of the notes.
func renderNotes(t *testing.T, helm, name string, opts chart.Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(chart.Dir(name))); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | quote }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(cm), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := chart.TemplateDirOutput(helm, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(out), "\n---") {
		var obj struct {
			Metadata struct{ Name string }
			Data     map[string]string
		}
		if yaml.Unmarshal([]byte(doc), &obj) == nil && obj.Metadata.Name == "notes" {
			return obj.Data["notes"]
		}
	}
	t.Fatalf("notes not rendered:\n%s", out)
	return ""
}

func TestNotes(t *testing.T) {
	helm := chart.HelmBinary(t)
	demo := renderNotes(t, helm, chart.DemoChart, chart.Options{Values: []string{chart.ValuesFile("demo-ingress.yaml")}})
	if !strings.Contains(demo, "curl --cacert ca.crt --cert client.crt --key client.key https://") || strings.Contains(demo, " -k ") {
		t.Errorf("demo NOTES must verify the Ingress with --cacert, never -k:\n%s", demo)
	}
	single := renderNotes(t, helm, chart.WebhookChart, chart.Options{Set: []string{"replicaCount=1"}})
	for _, want := range []string{"no PodDisruptionBudget was created", "That includes this release's own namespace (mtls-system)", "helm test mtls -n mtls-system"} {
		if !strings.Contains(single, want) {
			t.Errorf("webhook NOTES (replicaCount=1) lack %q:\n%s", want, single)
		}
	}
	if two := renderNotes(t, helm, chart.WebhookChart, chart.Options{}); strings.Contains(two, "PodDisruptionBudget") {
		t.Errorf("webhook NOTES mention the budget with 2 replicas:\n%s", two)
	}
}

// TestGuardScopeValues: the guard's scope is its own value, named in NOTES,
// and every setting that weakens it says so there.
func TestGuardScopeValues(t *testing.T) {
	helm := chart.HelmBinary(t)
	objs := chart.Render(t, helm, chart.WebhookChart, chart.Options{Set: []string{
		"guard.excludedNamespaces={legacy}", "certManager.csiDriverNamespace=cert-manager-csi",
		"networkPolicy.enabled=true", "networkPolicy.webhookFrom[0].ipBlock.cidr=198.18.0.0/24",
	}})
	guardValues := func(exprs []any) []string {
		if len(exprs) != 1 {
			t.Fatalf("guard selector %v, want one expression", exprs)
		}
		e := exprs[0].(map[string]any)
		if e["key"] != "kubernetes.io/metadata.name" || e["operator"] != "NotIn" {
			t.Fatalf("guard selector %v", e)
		}
		return toStrings(e["values"].([]any))
	}
	want := []string{"cert-manager", "cert-manager-csi", "legacy"}
	binding := find(t, objs, "ValidatingAdmissionPolicyBinding", "mtls-mtls-webhook-csi-guard")
	if got := guardValues(nested[[]any](t, binding, "spec", "matchResources", "namespaceSelector", "matchExpressions")); !slices.Equal(got, want) {
		t.Errorf("csi-guard binding leaves out %v, want %v", got, want)
	}
	vwc := find(t, objs, "ValidatingWebhookConfiguration", "mtls-mtls-webhook")
	wh := nested[[]any](t, vwc, "webhooks")[0].(map[string]any)
	exprs, _, _ := unstructured.NestedSlice(wh, "namespaceSelector", "matchExpressions")
	if got := guardValues(exprs); !slices.Equal(got, want) {
		t.Errorf("verify.mtls.demo leaves out %v, want %v", got, want)
	}
	// The csi-driver's namespace is out of injection too.
	mwc := find(t, objs, "MutatingWebhookConfiguration", "mtls-mtls-webhook")
	mexprs, _, _ := unstructured.NestedSlice(nested[[]any](t, mwc, "webhooks")[0].(map[string]any), "namespaceSelector", "matchExpressions")
	if !slices.Contains(toStrings(mexprs[0].(map[string]any)["values"].([]any)), "cert-manager-csi") {
		t.Errorf("injection does not leave out the csi-driver's namespace: %v", mexprs)
	}
	np := find(t, objs, "NetworkPolicy", "mtls-mtls-webhook")
	https := nested[[]any](t, np, "spec", "ingress")[0].(map[string]any)
	if from, _, _ := unstructured.NestedSlice(https, "from"); len(from) != 1 || !strings.Contains(fmt.Sprint(from), "198.18.0.0/24") {
		t.Errorf("https ingress from = %v, want networkPolicy.webhookFrom", from)
	}

	notes := renderNotes(t, helm, chart.WebhookChart, chart.Options{Set: []string{"guard.excludedNamespaces={legacy}", "validatingAdmissionPolicy.enabled=false", "validatingWebhook.failurePolicy=Ignore"}})
	for _, w := range []string{"covers every namespace but:\n  cert-manager, legacy", "Opting a namespace or pod out of injection does not opt it out of the guard",
		"WARNING: guard.excludedNamespaces lists legacy", "WARNING: validatingAdmissionPolicy.enabled is false", "failurePolicy Ignore then admits any hand-written volume"} {
		if !strings.Contains(notes, w) {
			t.Errorf("NOTES lack %q:\n%s", w, notes)
		}
	}
	if open := renderNotes(t, helm, chart.WebhookChart, chart.Options{Set: []string{"validatingWebhook.failurePolicy=Ignore"}}); !strings.Contains(open, "only the CEL guard checks hand-written volumes") {
		t.Errorf("NOTES with verify.mtls.demo failing open do not say the CEL guard stands alone:\n%s", open)
	}
	if plain := renderNotes(t, helm, chart.WebhookChart, chart.Options{}); strings.Contains(plain, "WARNING: guard") || strings.Contains(plain, "WARNING: validating") || strings.Contains(plain, "only the CEL guard") {
		t.Errorf("default NOTES warn about the guard:\n%s", plain)
	}
}
