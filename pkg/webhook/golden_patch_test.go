package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// TestPatchEqualsPipelineForEveryGoldenCase is the guard on podPatch: for
// each of pkg/mutate's golden inputs, the patch the handler returns, applied
// to the request object as the API server would, gives exactly the pod the
// inject pipeline produced; and a pod the pipeline refuses is denied.
func TestPatchEqualsPipelineForEveryGoldenCase(t *testing.T) {
	files, err := filepath.Glob("../mutate/testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.yaml") {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			pod, services := readCase(t, f)
			raw, err := json.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			objs := make([]client.Object, len(services))
			for i := range services {
				objs[i] = &services[i]
			}
			inj := testInjector(t)
			inj.Defaults.Issuer.Name = "default-ca"
			inj.Options = mutate.Options{FrontendImage: "registry.test/demo-frontend:v1", BackendImage: "registry.test/demo-backend:v1", ClusterDomain: "cluster.local"}
			h := &Handler{Injector: inj, Reader: fakeReader(t, objs...)}

			resp := h.Handle(context.Background(), request(raw, pod.Namespace))
			want := inj.Inject(pod.DeepCopy(), services)
			if !want.Injected {
				if resp.Allowed {
					t.Fatalf("the pipeline refuses the pod (%v) but the handler allowed it", want.Errors)
				}
				return
			}
			if !resp.Allowed {
				t.Fatalf("denied: %v", resp.Result)
			}
			got := applyPatch(t, raw, resp)
			if diff := cmp.Diff(want.Pod, got); diff != "" {
				t.Errorf("patched request differs from the pipeline's pod (-want +got):\n%s", diff)
			}
		})
	}
	if n < 15 {
		t.Fatalf("found %d golden inputs, want the 15+ of pkg/mutate", n)
	}
}

func readCase(t *testing.T, file string) (*corev1.Pod, []corev1.Service) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var (
		pod      *corev1.Pod
		services []corev1.Service
	)
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "Pod":
			pod = &corev1.Pod{}
			if err := yaml.Unmarshal(doc, pod); err != nil {
				t.Fatal(err)
			}
		case "Service":
			var svc corev1.Service
			if err := yaml.Unmarshal(doc, &svc); err != nil {
				t.Fatal(err)
			}
			services = append(services, svc)
		}
	}
	if pod == nil {
		t.Fatal("no pod")
	}
	return pod, services
}
