package helm

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
	return nil
}

func nested[T any](t *testing.T, o *unstructured.Unstructured, path ...string) T {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s %s: no field %v (%v)", o.GetKind(), o.GetName(), path, err)
	}
	tv, ok := v.(T)
	if !ok {
		t.Fatalf("%s %s: field %v is %T", o.GetKind(), o.GetName(), path, v)
	}
	return tv
}

func toStrings(in []any) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i], _ = v.(string)
	}
	return out
}

func envOf(t *testing.T, dep *unstructured.Unstructured) map[string]string {
	t.Helper()
	ctr := nested[[]any](t, dep, "spec", "template", "spec", "containers")[0].(map[string]any)
	env := map[string]string{}
	for _, e := range ctr["env"].([]any) {
		em := e.(map[string]any)
		env[em["name"].(string)], _ = em["value"].(string)
	}
	return env
}
