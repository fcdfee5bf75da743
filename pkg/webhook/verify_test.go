package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

func forgedVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: mutate.Driver, ReadOnly: new(true),
		VolumeAttributes: map[string]string{mutate.AttrIssuerName: "corp-ca", mutate.AttrURISANs: "spiffe://cluster.local/ns/bank/sa/frontend"},
	}}}
}

// TestVerifyOverHTTP drives the validating endpoint the way the API server
// does, through NewVerifyHTTPHandler: the pod the mutating endpoint
// produced is allowed and counted as verified; a forged volume, on a plain
// pod or next to the injected one, is denied with a 422 naming the field.
func TestVerifyOverHTTP(t *testing.T) {
	h := &Handler{Injector: testInjector(t)}
	base := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: "shop", Annotations: map[string]string{annotations.Enable: "true"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	raw := podJSON(t, base)
	mutated := applyPatch(t, raw, h.Handle(context.Background(), request(raw, "shop")))
	mutated.Name = "web-abcde" // named by the API server before validation

	plain := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "shop"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}, Volumes: []corev1.Volume{forgedVolume("certs")}},
	}
	extra := mutated.DeepCopy()
	extra.Spec.Volumes = append(extra.Spec.Volumes, forgedVolume("extra"))

	tests := map[string]struct {
		pod       *corev1.Pod
		allowed   bool
		wantField string
	}{
		"the webhook's own volume":              {pod: mutated, allowed: true},
		"a plain pod without the driver":        {pod: base, allowed: true},
		"a forged volume on a plain pod":        {pod: plain, wantField: "spec.volumes[0].csi.driver"},
		"a forged volume next to the webhook's": {pod: extra, wantField: "spec.volumes[1].name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body, err := json.Marshal(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			ar, w := post(t, NewVerifyHTTPHandler(h), reviewOf(reviewV1, "pods", "CREATE", "shop", body), "application/json")
			if ar == nil || ar.Response == nil {
				t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
			}
			r := ar.Response
			if r.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", r.Allowed, tc.allowed, r.Result)
			}
			if len(r.Patch) > 0 {
				t.Errorf("the validating endpoint returned a patch: %s", r.Patch)
			}
			if tc.allowed {
				return
			}
			if r.Result.Code != http.StatusUnprocessableEntity || r.Result.Details == nil || len(r.Result.Details.Causes) == 0 ||
				r.Result.Details.Causes[0].Field != tc.wantField || !strings.Contains(r.Result.Message, mutate.Driver) {
				t.Errorf("result = %+v, want a 422 on %s", r.Result, tc.wantField)
			}
		})
	}
	// The same decision through admission.Handler.
	if resp := (Verifier{h}).Handle(context.Background(), request(podJSON(t, plain), "shop")); resp.Allowed {
		t.Error("Verifier.Handle allowed the forged volume")
	}
}

// TestWindowsPodsAreRefusedOverHTTP proves the one-pass decoder reads
// spec.os: an opted-in windows pod is refused on spec.os.name.
func TestWindowsPodsAreRefusedOverHTTP(t *testing.T) {
	h := &Handler{Injector: testInjector(t)}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "win", Namespace: "shop", Annotations: map[string]string{annotations.Enable: "true"}},
		Spec:       corev1.PodSpec{OS: &corev1.PodOS{Name: corev1.Windows}, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	ar, w := post(t, NewHTTPHandler(h), reviewOf(reviewV1, "pods", "CREATE", "shop", podJSON(t, p)), "application/json")
	if ar == nil || ar.Response == nil {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
	}
	r := ar.Response
	if r.Allowed || r.Result == nil || r.Result.Details == nil || r.Result.Details.Causes[0].Field != "spec.os.name" ||
		!strings.Contains(r.Result.Message, "no Windows plugin") {
		t.Fatalf("response = %+v", r.Result)
	}
}
