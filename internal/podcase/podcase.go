// Package podcase reads the test cases shared by the mutation's golden tests
// and the handler's patch tests: a YAML file with one Pod and any Services
// that may select it.
package podcase

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Load reads file: a Pod, then any Services in the following documents.
// Unknown fields are errors, so a typo in a case cannot pass silently.
func Load(file string) (*corev1.Pod, []corev1.Service, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var (
		pod      *corev1.Pod
		services []corev1.Service
	)
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		switch meta.Kind {
		case "Pod":
			if pod != nil {
				return nil, nil, fmt.Errorf("%s: document %d: a second Pod; a case holds one", file, i)
			}
			pod = &corev1.Pod{}
			if err := yaml.UnmarshalStrict(doc, pod); err != nil {
				return nil, nil, fmt.Errorf("%s: pod: %w", file, err)
			}
		case "Service":
			var svc corev1.Service
			if err := yaml.UnmarshalStrict(doc, &svc); err != nil {
				return nil, nil, fmt.Errorf("%s: service: %w", file, err)
			}
			services = append(services, svc)
		case "":
		default:
			return nil, nil, fmt.Errorf("%s: document %d: unexpected kind %q", file, i, meta.Kind)
		}
	}
	if pod == nil {
		return nil, nil, fmt.Errorf("%s: no Pod", file)
	}
	return pod, services, nil
}
