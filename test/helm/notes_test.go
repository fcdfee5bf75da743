package helm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
