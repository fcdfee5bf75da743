package webhook

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// podPatch returns the JSON patch that turns orig into mutated, built from
// what the inject pipeline changes: annotations, volumes, and each
// container's image, env and volume mounts. Diffing two whole encoded pods
// (PatchResponseFromRaw) costs several times the pod's own decoding; this
// compares only those fields and encodes only what changed.
//
// Anything else the mutation might change would be missed, so the tests hold
// it to account: for every golden case and every fuzz input, the patch
// applied to the request object must give exactly the pipeline's pod. ok is
// false when a list or map shrank, which the mutation never does.
func podPatch(orig, mutated *corev1.Pod) (ops []patchOp, ok bool) {
	if len(orig.Spec.Containers) != len(mutated.Spec.Containers) || len(orig.Spec.InitContainers) != len(mutated.Spec.InitContainers) {
		return nil, false
	}
	ops, ok = mapPatch(ops, "/metadata/annotations", orig.Annotations, mutated.Annotations)
	if !ok {
		return nil, false
	}
	if ops, ok = slicePatch(ops, "/spec/volumes", orig.Spec.Volumes, mutated.Spec.Volumes, shallowOrDeepEqual); !ok {
		return nil, false
	}
	for i := range mutated.Spec.Containers {
		o, m := &orig.Spec.Containers[i], &mutated.Spec.Containers[i]
		base := "/spec/containers/" + strconv.Itoa(i)
		if o.Image != m.Image {
			ops = append(ops, op("replace", base+"/image", m.Image))
		}
		if ops, ok = slicePatch(ops, base+"/env", o.Env, m.Env, shallowOrDeepEqual); !ok {
			return nil, false
		}
		if ops, ok = slicePatch(ops, base+"/volumeMounts", o.VolumeMounts, m.VolumeMounts, deepEqual[corev1.VolumeMount]); !ok {
			return nil, false
		}
	}
	// Native sidecars (init containers with restartPolicy Always) get the
	// mount and env when mtls.demo/containers names them.
	for i := range mutated.Spec.InitContainers {
		o, m := &orig.Spec.InitContainers[i], &mutated.Spec.InitContainers[i]
		base := "/spec/initContainers/" + strconv.Itoa(i)
		if ops, ok = slicePatch(ops, base+"/env", o.Env, m.Env, shallowOrDeepEqual); !ok {
			return nil, false
		}
		if ops, ok = slicePatch(ops, base+"/volumeMounts", o.VolumeMounts, m.VolumeMounts, deepEqual[corev1.VolumeMount]); !ok {
			return nil, false
		}
	}
	return ops, true
}

// mapPatch adds or replaces the changed keys of a string map, in key order
// so the patch is deterministic. The mutation never removes keys; if one
// is gone, ok is false.
func mapPatch(ops []patchOp, path string, orig, mutated map[string]string) ([]patchOp, bool) {
	if len(orig) == 0 {
		if len(mutated) > 0 {
			ops = append(ops, op("add", path, mutated))
		}
		return ops, true
	}
	for k := range orig {
		if _, ok := mutated[k]; !ok {
			return nil, false
		}
	}
	for _, k := range slices.Sorted(maps.Keys(mutated)) {
		if old, ok := orig[k]; !ok || old != mutated[k] {
			ops = append(ops, op("add", path+"/"+pointerToken(k), mutated[k]))
		}
	}
	return ops, true
}

// slicePatch replaces changed elements in place and appends new ones, the
// two ways the mutation changes a list. It never removes elements; if the
// list shrank, ok is false.
func slicePatch[T any](ops []patchOp, path string, orig, mutated []T, equal func(a, b T) bool) ([]patchOp, bool) {
	if len(mutated) < len(orig) {
		return nil, false
	}
	if len(orig) == 0 {
		if len(mutated) > 0 {
			ops = append(ops, op("add", path, mutated))
		}
		return ops, true
	}
	for i := range mutated {
		switch {
		case i >= len(orig):
			ops = append(ops, op("add", path+"/-", mutated[i]))
		case !equal(orig[i], mutated[i]):
			ops = append(ops, op("replace", path+"/"+strconv.Itoa(i), mutated[i]))
		}
	}
	return ops, true
}

// shallowOrDeepEqual compares with == first: Mutate copies the lists it
// edits but shares the pointers of elements it leaves alone, so most
// elements are found equal without a deep walk.
func shallowOrDeepEqual[T comparable](a, b T) bool {
	return a == b || reflect.DeepEqual(a, b)
}

// deepEqual is reflect.DeepEqual for types that == cannot compare.
func deepEqual[T any](a, b T) bool { return reflect.DeepEqual(a, b) }

// patchOp is one RFC 6902 operation. The patch is encoded in one pass from
// these, rather than through jsonpatch.Operation, whose MarshalJSON encodes
// every value twice.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

func op(kind, path string, value any) patchOp { return patchOp{Op: kind, Path: path, Value: value} }

// pointerToken escapes one JSON Pointer reference token (RFC 6901): an
// annotation key such as mtls.demo/status becomes mtls.demo~1status.
func pointerToken(s string) string { return tokenEscaper.Replace(s) }

// tokenEscaper is immutable and safe for concurrent use.
var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")
