package csivalidate

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/lru"
)

// Memo remembers Check's verdicts. Check is a pure function of the volume
// context, and the pods of one ReplicaSet share theirs (same generateName,
// namespace, service account and annotations), so a Deployment's rollout
// pays for the driver's rules once instead of once per pod. The verdicts
// live in k8s.io/utils' LRU cache, which is safe for concurrent use; the
// zero value is not usable, use NewMemo.
type Memo struct {
	cache *lru.Cache
}

// NewMemo returns a Memo holding at most size verdicts, the least recently
// used dropped first.
func NewMemo(size int) *Memo {
	return &Memo{cache: lru.New(max(size, 1))}
}

// Check is csivalidate.Check with memory. The returned list is shared:
// callers must not modify it. A nil Memo just calls Check.
func (m *Memo) Check(pod *corev1.Pod, attrs map[string]string) field.ErrorList {
	if m == nil {
		return Check(pod, attrs)
	}
	key := memoKey(pod, attrs)
	if v, ok := m.cache.Get(key); ok {
		return v.(field.ErrorList)
	}
	errs := Check(pod, attrs)
	m.cache.Add(key, errs)
	return errs
}

// memoKey is an unambiguous encoding of what VolumeContext(pod, attrs)
// depends on: the attributes, keys sorted, and the pod's identity fields,
// each entry ended by a NUL, which no annotation or name can hold.
func memoKey(pod *corev1.Pod, attrs map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(attrs[k])
		b.WriteByte(0)
	}
	for _, s := range [...]string{pod.Name, pod.GenerateName, pod.Namespace, string(pod.UID), pod.Spec.ServiceAccountName} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.String()
}
