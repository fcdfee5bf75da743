package webhook

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/internal/podcase"
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
			pod, services, err := podcase.Load(f)
			if err != nil {
				t.Fatal(err)
			}
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
