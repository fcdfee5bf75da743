// Package helmchart renders this repository's Helm charts with the pinned
// helm binary and decodes the result into objects, for everything that
// applies exactly what `helm install` would create: the chart and
// integration tests, and `make demo`.
package helmchart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// KubeVersion is passed to `helm template --kube-version`: the charts
// require Kubernetes >= 1.30 (ValidatingAdmissionPolicy v1, matchConditions)
// and helm's offline default is older.
const KubeVersion = "1.37.0"

// Options select what to render.
type Options struct {
	Release   string
	Namespace string
	Values    []string // values files, in order (helm --values)
	Set       []string // --set expressions, applied after Values
}

// Template runs `helm template` on the chart in chartDir and returns its
// standard output, or an error holding helm's standard error (schema and
// `fail` messages name the bad value there).
func Template(helmBin, chartDir string, o Options) ([]byte, error) {
	args := []string{"template", o.Release, chartDir, "--namespace", o.Namespace, "--kube-version", KubeVersion}
	for _, f := range o.Values {
		args = append(args, "--values", f)
	}
	for _, s := range o.Set {
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
// documents. Unstructured's own JSON decoding keeps integers as int64, as
// the API machinery expects.
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
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
}
