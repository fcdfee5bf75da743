package cli_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtls-demo/mtls-webhook/internal/podcase"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
)

// workloadGolden is what the pipeline says about a workload's pod template
// when the workload is applied: the refusal on the template's paths, the
// warnings, and the CSI attributes its pods would get.
type workloadGolden struct {
	Flags      []string          `json:"flags,omitempty"`
	Kind       string            `json:"kind"`
	Path       string            `json:"path"`
	Warnings   []string          `json:"warnings,omitempty"`
	Errors     []string          `json:"errors,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// loadWorkload reads file: one workload of a kind TemplateOf knows, then
// any Services. Unknown fields are errors.
func loadWorkload(file string) (runtime.Object, []corev1.Service, error) {
	return podcase.LoadObject(file, "workload", func(kind string) runtime.Object {
		switch kind {
		case inject.KindDeployment:
			return &appsv1.Deployment{}
		case inject.KindStatefulSet:
			return &appsv1.StatefulSet{}
		case inject.KindDaemonSet:
			return &appsv1.DaemonSet{}
		case inject.KindReplicaSet:
			return &appsv1.ReplicaSet{}
		case inject.KindJob:
			return &batchv1.Job{}
		case inject.KindCronJob:
			return &batchv1.CronJob{}
		}
		return nil
	})
}

// TestWorkloadGolden runs every workload case of testdata/pipeline/workloads through
// the template check with its flags. Every case of a kind refuses or
// accepts on that kind's template path, and the pod the template makes is
// judged exactly as that pod would be at its creation (same errors, paths
// moved onto the template; same warnings, prefixed with it).
func TestWorkloadGolden(t *testing.T) {
	kinds := map[string]bool{}
	runCases(t, "testdata/pipeline/workloads", func(t *testing.T, name, in string, flags []string, inj *inject.Injector) any {
		obj, services, err := loadWorkload(in)
		if err != nil {
			t.Fatal(err)
		}
		kind, meta, tmpl, ok := inject.TemplateOf(obj)
		if !ok {
			t.Fatalf("%T is not a workload", obj)
		}
		kinds[kind] = true
		path, ok := inject.TemplatePath(kind)
		if !ok {
			t.Fatalf("no template path for %s", kind)
		}
		pod := inject.PodFromTemplate(meta.Namespace, meta.Name, tmpl)
		out := inj.CheckTemplate(pod.DeepCopy(), path, services)
		g := workloadGolden{Flags: flags, Kind: kind, Path: path.String(), Warnings: out.Warnings}
		for _, e := range out.Errors {
			if !strings.HasPrefix(e.Field, path.String()+".") {
				t.Errorf("error %q is not on the template's path %s", e.Error(), path)
			}
			g.Errors = append(g.Errors, e.Error())
		}
		if out.Injected {
			g.Attributes = out.Attributes
		} else if len(g.Errors) == 0 {
			t.Errorf("case %s is neither accepted with an injection nor refused: it tests nothing", name)
		}

		// The same pod, judged as a pod.
		asPod := inj.Inject(pod.DeepCopy(), services)
		if asPod.Injected != out.Injected || len(asPod.Errors) != len(out.Errors) || len(asPod.Warnings) != len(out.Warnings) {
			t.Fatalf("template: injected=%v %d errors %d warnings; as a pod: injected=%v %d errors %d warnings",
				out.Injected, len(out.Errors), len(out.Warnings), asPod.Injected, len(asPod.Errors), len(asPod.Warnings))
		}
		for i, e := range asPod.Errors {
			if want := path.String() + "." + e.Field; out.Errors[i].Field != want || out.Errors[i].Detail != e.Detail {
				t.Errorf("error %d: template %q, pod %q", i, out.Errors[i].Error(), e.Error())
			}
		}
		for i, w := range asPod.Warnings {
			if out.Warnings[i] != path.String()+": "+w {
				t.Errorf("warning %d: template %q, pod %q", i, out.Warnings[i], w)
			}
		}
		return g
	})
	for _, k := range []string{inject.KindDeployment, inject.KindStatefulSet, inject.KindDaemonSet, inject.KindReplicaSet, inject.KindJob, inject.KindCronJob} {
		if !kinds[k] {
			t.Errorf("no case in testdata/pipeline/workloads is a %s", k)
		}
	}
}
