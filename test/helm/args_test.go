package helm

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mtls-demo/mtls-webhook/internal/cli"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// TestChartArgsAreAcceptedByTheBinary feeds the Deployment's args, for every
// value set, to the webhook's own flag parsing and validation, so the chart
// can never ship a flag or value the binary refuses at start-up.
func TestChartArgsAreAcceptedByTheBinary(t *testing.T) {
	helm := chart.HelmBinary(t)
	sets := map[string]chart.Options{"defaults": {}}
	for _, f := range valueSets[chart.WebhookChart] {
		sets[f] = chart.Options{Values: []string{chart.ValuesFile(f)}}
	}
	for name, opts := range sets {
		t.Run(name, func(t *testing.T) {
			objs := chart.Render(t, helm, chart.WebhookChart, opts)
			var dep = findKind(t, objs, "Deployment")
			ctr := nested[[]any](t, dep, "spec", "template", "spec", "containers")[0].(map[string]any)
			args := toStrings(ctr["args"].([]any))
			if len(args) == 0 || args[0] != "serve" {
				t.Fatalf("args %v do not start with serve", args)
			}
			if err := cli.CheckServeArgs(args[1:]); err != nil {
				t.Errorf("the webhook refuses the chart's args %v: %v", args, err)
			}
		})
	}
}

func findKind(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind {
			return o
		}
	}
	t.Fatalf("no %s rendered", kind)
	return nil
}
