package mutate

import (
	"testing"

	csiapi "github.com/cert-manager/csi-driver/pkg/apis/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtls-demo/mtls-webhook/demo-apps/app"
	"github.com/mtls-demo/mtls-webhook/demo-apps/pki"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// The attribute keys are repeated in this package to keep it light; this
// pins them to the driver's own constants.
func TestAttributeKeysAreTheDriversOwn(t *testing.T) {
	pairs := map[string]string{
		AttrIssuerName: csiapi.IssuerNameKey, AttrIssuerKind: csiapi.IssuerKindKey, AttrIssuerGroup: csiapi.IssuerGroupKey,
		AttrCommonName: csiapi.CommonNameKey, AttrDNSNames: csiapi.DNSNamesKey, AttrURISANs: csiapi.URISANsKey,
		AttrDuration: csiapi.DurationKey, AttrRenewBefore: csiapi.RenewBeforeKey, AttrKeyAlg: csiapi.KeyAlgorithmKey,
		AttrKeySize: csiapi.KeySizeKey, AttrKeyUsages: csiapi.KeyUsagesKey, AttrCertFile: csiapi.CertFileKey,
		AttrKeyFile: csiapi.KeyFileKey, AttrCAFile: csiapi.CAFileKey, AttrFSGroup: csiapi.FSGroupKey,
	}
	for ours, theirs := range pairs {
		if ours != theirs {
			t.Errorf("attribute %q is %q in csi-driver", ours, theirs)
		}
	}
}

func TestAnnotationFor(t *testing.T) {
	if got := AnnotationFor(AttrKeySize); got != annotations.KeySize {
		t.Errorf("key-size maps to %s", got)
	}
	if got := AnnotationFor(AttrKeyUsages); got != annotations.Enable {
		t.Errorf("an attribute the user cannot set maps to %s, want the opt-in key", got)
	}
}

func TestMutateRefusesAPodWithoutContainers(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	cfg, _, _ := annotations.Parse(map[string]string{annotations.Enable: "true"}, testDefaults())
	if _, errs := Mutate(pod, cfg, nil, testOptions); len(errs) != 1 || errs[0].Field != "spec.containers" {
		t.Fatalf("got %v, want one error on spec.containers", errs)
	}
}

func TestMutateNeedsAnImageForTheRole(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	cfg, _, _ := annotations.Parse(map[string]string{annotations.Enable: "true", annotations.App: "frontend"}, testDefaults())
	opts := testOptions
	opts.FrontendImage = ""
	_, errs := Mutate(pod, cfg, nil, opts)
	if len(errs) != 1 || errs[0].Field != "metadata.annotations[mtls.demo/app]" {
		t.Fatalf("got %v, want one error on the app annotation", errs)
	}
}

func TestStatusHashFollowsTheConfig(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	status := func(ann map[string]string) string {
		cfg, _, errs := annotations.Parse(ann, testDefaults())
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		res, errs := Mutate(pod, cfg, nil, testOptions)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return res.Pod.Annotations[annotations.Status]
	}
	a := status(map[string]string{annotations.Enable: "true"})
	b := status(map[string]string{annotations.Enable: "true", annotations.Duration: "48h"})
	if a == b || len(a) != len(StatusPrefix)+10 {
		t.Errorf("status %q and %q: want distinct injected-<10 hex> values", a, b)
	}
}

// The demo apps keep their own copy of the env var names (their image
// builds from demo-apps/ alone); this pins the two sets together.
func TestInjectedEnvIsWhatTheDemoAppsRead(t *testing.T) {
	for ours, theirs := range map[string]string{
		EnvUseMTLS: app.EnvUseMTLS, EnvCertFile: app.EnvCertFile, EnvKeyFile: app.EnvKeyFile, EnvCAFile: app.EnvCAFile,
	} {
		if ours != theirs {
			t.Errorf("the webhook injects %s, the demo apps read %s", ours, theirs)
		}
	}
	if CertFile != pki.CertName || KeyFile != pki.KeyName || CAFile != pki.CAName {
		t.Errorf("file names %s/%s/%s differ from the driver layout the demo uses (%s/%s/%s)",
			CertFile, KeyFile, CAFile, pki.CertName, pki.KeyName, pki.CAName)
	}
}
