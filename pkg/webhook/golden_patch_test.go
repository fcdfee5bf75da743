package webhook

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtls-demo/mtls-webhook/internal/podcase"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// goldenCase is one of pkg/mutate's golden inputs, ready for the handler.
type goldenCase struct {
	name     string
	pod      *corev1.Pod
	services []corev1.Service
	raw      []byte // the pod as the API server sends it
	handler  *Handler
}

// goldenCases loads every golden input of pkg/mutate, each with a handler
// configured as the golden files were written and the case's Services
// behind its reader.
func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	files, err := filepath.Glob("../mutate/testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.yaml") {
			continue
		}
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
		cases = append(cases, goldenCase{
			name: strings.TrimSuffix(filepath.Base(f), ".yaml"), pod: pod, services: services, raw: raw,
			handler: &Handler{Injector: inj, Reader: fakeReader(t, objs...)},
		})
	}
	if len(cases) < 15 {
		t.Fatalf("found %d golden inputs, want the 15+ of pkg/mutate", len(cases))
	}
	return cases
}

// TestPatchEqualsPipelineForEveryGoldenCase is the guard on podPatch, on
// the one-pass HTTP server and on the Service index: for each of
// pkg/mutate's golden inputs, the patch the webhook returns over HTTP (the
// path the API server takes), and the ones Handle returns listing every
// Service or looking them up through the index, applied to the request object as the API server
// would, give exactly the pod the inject pipeline produced; and a pod the
// pipeline refuses is denied.
func TestPatchEqualsPipelineForEveryGoldenCase(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			want := c.handler.Injector.Inject(c.pod.DeepCopy(), c.services)

			ar, w := post(t, NewHTTPHandler(c.handler), reviewOf(reviewV1, "pods", "CREATE", c.pod.Namespace, c.raw), "application/json")
			if ar == nil || ar.Response == nil {
				t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
			}
			served := admission.Response{AdmissionResponse: *ar.Response}
			direct := c.handler.Handle(context.Background(), request(c.raw, c.pod.Namespace))
			indexed := *c.handler
			indexed.ServicesIndexed = true
			viaIndex := indexed.Handle(context.Background(), request(c.raw, c.pod.Namespace))

			for path, resp := range map[string]admission.Response{"over HTTP": served, "Handle": direct, "Handle with the Service index": viaIndex} {
				if !want.Injected {
					if resp.Allowed {
						t.Fatalf("%s: the pipeline refuses the pod (%v) but the webhook allowed it", path, want.Errors)
					}
					continue
				}
				if !resp.Allowed {
					t.Fatalf("%s: denied: %v", path, resp.Result)
				}
				got := applyPatch(t, c.raw, resp)
				if diff := cmp.Diff(want.Pod, got); diff != "" {
					t.Errorf("%s: patched request differs from the pipeline's pod (-want +got):\n%s", path, diff)
				}
			}
		})
	}
}
