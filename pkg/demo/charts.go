package demo

import (
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mtls-demo/mtls-webhook/internal/helmchart"
)

// RenderChart runs `helm template` (bin/helm) on helm/<chart> and decodes
// the objects.
func RenderChart(binDir, repoRoot, chart, release, namespace string, set []string) ([]*unstructured.Unstructured, error) {
	out, err := helmchart.Template(filepath.Join(binDir, "helm"), filepath.Join(repoRoot, "helm", chart),
		helmchart.Options{Release: release, Namespace: namespace, Set: set})
	if err != nil {
		return nil, err
	}
	return helmchart.Decode(out)
}
