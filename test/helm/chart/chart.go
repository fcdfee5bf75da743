// Package chart renders this repository's Helm charts with the pinned helm
// binary and decodes the result, so that tests can apply exactly what
// `helm install` would create. The integration tests use
// RenderWebhookChart to register the webhook from the chart's own
// MutatingWebhookConfiguration.
package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// KubeVersion is passed to `helm template --kube-version`: the charts
// require Kubernetes >= 1.30 (ValidatingAdmissionPolicy v1, matchConditions)
// and helm's offline default is older.
const KubeVersion = "1.37.0"

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
	args := []string{"template", opts.Release, Dir(chartName),
		"--namespace", opts.Namespace, "--kube-version", KubeVersion}
	for _, f := range opts.Values {
		args = append(args, "--values", f)
	}
	for _, s := range opts.Set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helmBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Decode splits a multi-document YAML stream into objects, dropping empty
// documents.
func Decode(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) || bytes.Equal(t, []byte("{}")) {
			continue
		}
		// Unstructured's own JSON decoding keeps integers as int64, as the
		// API machinery expects.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
}

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
