package mutate

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/mtls-demo/mtls-webhook/internal/podcase"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// testOptions are the webhook-wide settings every golden case runs with.
var testOptions = Options{
	FrontendImage: "registry.test/demo-frontend:v1",
	BackendImage:  "registry.test/demo-backend:v1",
	ClusterDomain: "cluster.local",
}

func testDefaults() annotations.Defaults {
	d := annotations.NewDefaults()
	d.Issuer.Name = "default-ca"
	return d
}

// golden is what a case produces: the mutated pod and its warnings, or the
// errors that refuse it.
type golden struct {
	Warnings []string    `json:"warnings,omitempty"`
	Errors   []string    `json:"errors,omitempty"`
	Pod      *corev1.Pod `json:"pod,omitempty"`
}

// loadCase reads testdata/<case>.yaml: a Pod, then any Services.
func loadCase(t *testing.T, file string) (*corev1.Pod, []corev1.Service) {
	t.Helper()
	pod, services, err := podcase.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return pod, services
}

func run(t *testing.T, pod *corev1.Pod, services []corev1.Service) (golden, *Result) {
	t.Helper()
	cfg, warnings, errs := annotations.Parse(pod.Annotations, testDefaults())
	if len(errs) > 0 {
		t.Fatalf("golden cases must have valid annotations (Parse has its own tests): %v", errs)
	}
	res, errs := Mutate(pod, cfg, services, testOptions)
	g := golden{Warnings: append(warnings, res.Warnings...)}
	for _, e := range errs {
		g.Errors = append(g.Errors, e.Error())
	}
	if len(errs) > 0 {
		return g, nil
	}
	g.Pod = res.Pod
	return g, &res
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	cases := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.yaml") {
			continue
		}
		cases++
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		goldenFile := strings.TrimSuffix(in, ".yaml") + ".golden.yaml"
		used[goldenFile] = true
		t.Run(name, func(t *testing.T) {
			pod, services := loadCase(t, in)
			original := pod.DeepCopy()
			g, res := run(t, pod, services)
			if diff := cmp.Diff(original, pod); diff != "" {
				t.Fatalf("Mutate changed its input (-before +after):\n%s", diff)
			}
			podcase.CompareGolden(t, goldenFile, g, *update, "./pkg/mutate")
			if res == nil {
				return
			}
			t.Run("idempotent", func(t *testing.T) {
				cfg, _, errs := annotations.Parse(res.Pod.Annotations, testDefaults())
				if len(errs) > 0 {
					t.Fatalf("the mutated pod no longer parses: %v", errs)
				}
				again, errs := Mutate(res.Pod, cfg, services, testOptions)
				if len(errs) > 0 {
					t.Fatalf("second Mutate refused the pod: %v", errs)
				}
				if diff := cmp.Diff(res.Pod, again.Pod); diff != "" {
					t.Errorf("second Mutate changed the pod (-first +second):\n%s", diff)
				}
				if diff := cmp.Diff(res.Attributes, again.Attributes); diff != "" {
					t.Errorf("second Mutate changed the attributes:\n%s", diff)
				}
			})
		})
	}
	if cases < 15 {
		t.Errorf("only %d golden cases; the contract asks for at least 15", cases)
	}
	podcase.CheckUnusedGoldens(t, "testdata", used)
}
