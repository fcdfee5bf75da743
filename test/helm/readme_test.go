package helm

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mtls-demo/mtls-webhook/internal/helmdocs"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// TestReadmeValuesTables: helm/README.md lists every documented value with
// its default, as values.yaml says today (`make helm-docs` rewrites it).
func TestReadmeValuesTables(t *testing.T) {
	readmePath := filepath.Join(chart.Dir(chart.WebhookChart), "..", "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	want := readme
	for _, name := range []string{chart.WebhookChart, chart.DemoChart} {
		values, err := os.ReadFile(filepath.Join(chart.Dir(name), "values.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		table, err := helmdocs.Table(values)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want, err = helmdocs.Replace(want, name, table); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(string(want), string(readme)); d != "" {
		t.Errorf("helm/README.md values tables are stale; run `make helm-docs` (-want +got):\n%s", d)
	}
}
