// Package podcase reads the test cases shared by the mutation's golden tests
// and the handler's patch tests: a YAML file with one Pod (or, for the
// workload cases, one workload) and any Services that may select it.
package podcase

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Load reads file: a Pod, then any Services in the following documents.
// Unknown fields are errors, so a typo in a case cannot pass silently.
func Load(file string) (*corev1.Pod, []corev1.Service, error) {
	obj, services, err := LoadObject(file, "Pod", func(kind string) runtime.Object {
		if kind == "Pod" {
			return &corev1.Pod{}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return obj.(*corev1.Pod), services, nil
}

// LoadObject reads file: exactly one object of a kind newObject knows (it
// returns nil for any other kind), and any Services. what names the object
// in errors. Unknown fields are errors, as in Load.
func LoadObject(file, what string, newObject func(kind string) runtime.Object) (runtime.Object, []corev1.Service, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var (
		obj      runtime.Object
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
		case "":
			continue
		case "Service":
			var svc corev1.Service
			if err := yaml.UnmarshalStrict(doc, &svc); err != nil {
				return nil, nil, fmt.Errorf("%s: service: %w", file, err)
			}
			services = append(services, svc)
			continue
		}
		into := newObject(meta.Kind)
		if into == nil {
			return nil, nil, fmt.Errorf("%s: document %d: unexpected kind %q", file, i, meta.Kind)
		}
		if obj != nil {
			return nil, nil, fmt.Errorf("%s: document %d: a second %s; a case holds one", file, i, what)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", file, meta.Kind, err)
		}
		obj = into
	}
	if obj == nil {
		return nil, nil, fmt.Errorf("%s: no %s", file, what)
	}
	return obj, services, nil
}
