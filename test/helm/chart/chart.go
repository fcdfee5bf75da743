// Package chart renders this repository's Helm charts with the pinned helm
// binary and decodes the result, so that tests can apply exactly what
// `helm install` would create. The integration tests use
// RenderWebhookChart to register the webhook from the chart's own
// MutatingWebhookConfiguration.
package chart

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtls-demo/mtls-webhook/internal/helmchart"
)

// KubeVersion is what `helm template --kube-version` is given.
const KubeVersion = helmchart.KubeVersion

// WebhookChart and DemoChart name the charts under helm/.
const (
	WebhookChart = "mtls-webhook"
	DemoChart    = "mtls-demo"
)

// RepoRoot is the repository's top directory, found from this file's path
// so that it does not depend on the test's working directory.
func RepoRoot() string {
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		panic("chart: cannot locate source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Dir is the directory of the chart called name (WebhookChart, DemoChart).
func Dir(name string) string { return filepath.Join(RepoRoot(), "helm", name) }

// ValuesFile is the path of a values file under test/helm/testdata/values.
func ValuesFile(name string) string {
	return filepath.Join(RepoRoot(), "test", "helm", "testdata", "values", name)
}

// HelmBinary is $HELM (set by `make test-helm`) or bin/helm of the
// repository. It fails the test when the binary is missing.
func HelmBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = filepath.Join(RepoRoot(), "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm binary %s not found (%v): run `make bin/helm` or set HELM", bin, err)
	}
	return bin
}

// Options select what to render.
type Options struct {
	Release   string   // release name; default "mtls"
	Namespace string   // release namespace; default "mtls-system"
	Values    []string // values files, in order (helm -f)
	Set       []string // --set expressions, applied after Values
}

func (o Options) withDefaults() Options {
	if o.Release == "" {
		o.Release = "mtls"
	}
	if o.Namespace == "" {
		o.Namespace = "mtls-system"
	}
	return o
}

// TemplateOutput runs `helm template` and returns its standard output, or
// an error holding helm's standard error (schema and `fail` messages).
func TemplateOutput(helmBin, chartName string, opts Options) ([]byte, error) {
	opts = opts.withDefaults()
	return helmchart.Template(helmBin, Dir(chartName), helmchart.Options(opts))
}

// TemplateDirOutput is TemplateOutput for a chart at dir, such as a copy of
// one of the charts.
func TemplateDirOutput(helmBin, dir string, opts Options) ([]byte, error) {
	opts = opts.withDefaults()
	return helmchart.Template(helmBin, dir, helmchart.Options(opts))
}

// Decode splits a multi-document YAML stream into objects, dropping empty
// documents.
func Decode(manifest []byte) ([]*unstructured.Unstructured, error) { return helmchart.Decode(manifest) }

// Render renders chartName with opts and decodes every object, failing the
// test on any error.
func Render(t testing.TB, helmBin, chartName string, opts Options) []*unstructured.Unstructured {
	t.Helper()
	out, err := TemplateOutput(helmBin, chartName, opts)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatalf("decode rendered %s: %v", chartName, err)
	}
	return objs
}

// RenderWebhookChart renders helm/mtls-webhook (release "mtls" in namespace
// "mtls-system" unless opts says otherwise) and returns its
// MutatingWebhookConfiguration, exactly as the chart ships it: caBundle is
// empty (cainjector fills it in a cluster), so callers that run the webhook
// themselves set Webhooks[0].ClientConfig (CABundle, and URL or Service).
func RenderWebhookChart(t testing.TB, helmBin string, opts Options) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	var found []*admissionregistrationv1.MutatingWebhookConfiguration
	for _, o := range Render(t, helmBin, WebhookChart, opts) {
		if o.GetKind() != "MutatingWebhookConfiguration" {
			continue
		}
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &mwc, true); err != nil {
			t.Fatalf("rendered MutatingWebhookConfiguration: %v", err)
		}
		found = append(found, &mwc)
	}
	if len(found) != 1 {
		t.Fatalf("chart %s rendered %d MutatingWebhookConfigurations, want 1", WebhookChart, len(found))
	}
	return found[0]
}
