package csivalidate

import (
	"reflect"
	"testing"

	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

func TestMemoGivesCheckVerdicts(t *testing.T) {
	m := NewMemo(2)
	bad := goodAttrs()
	bad[mutate.AttrDuration] = "1 day"
	for range 3 {
		for _, attrs := range []map[string]string{goodAttrs(), bad} {
			if got, want := m.Check(testPod(), attrs), Check(testPod(), attrs); !reflect.DeepEqual(got, want) {
				t.Fatalf("memo %v, check %v", got, want)
			}
		}
	}
	if m.cache.Len() != 2 {
		t.Errorf("%d entries, want 2", m.cache.Len())
	}
	other := testPod()
	other.Spec.ServiceAccountName = "other"
	m.Check(other, goodAttrs())
	if m.cache.Len() != 2 {
		t.Errorf("memo grew past its size: %d entries", m.cache.Len())
	}
	var nilMemo *Memo
	if errs := nilMemo.Check(testPod(), bad); len(errs) == 0 {
		t.Error("a nil memo must still check")
	}
}

func TestMemoKeyIsUnambiguous(t *testing.T) {
	a := memoKey(testPod(), map[string]string{"a": "b\x00c"})
	b := memoKey(testPod(), map[string]string{"a": "b", "c": ""})
	if a == b {
		t.Error("different attributes share a key")
	}
	named := testPod()
	named.Name, named.GenerateName = named.GenerateName, ""
	if memoKey(testPod(), nil) == memoKey(named, nil) {
		t.Error("a name and a generateName share a key")
	}
}
