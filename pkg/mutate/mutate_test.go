package mutate

import (
	"slices"
	"strings"
	"testing"

	csiapi "github.com/cert-manager/csi-driver/pkg/apis/v1alpha1"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// nativeSidecarPod has a plain init container, a native sidecar and the
// app's container.
func nativeSidecarPod(ann map[string]string) *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: ann},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{
				{Name: "migrate", Image: "m"},
				{Name: "tls-proxy", Image: "t", RestartPolicy: &always,
					SecurityContext: &corev1.SecurityContext{RunAsGroup: new(int64(2000))}},
			},
			Containers: []corev1.Container{{Name: "app", Image: "x"}},
		}}
}

func mustParse(t *testing.T, ann map[string]string) annotations.Config {
	t.Helper()
	cfg, _, errs := annotations.Parse(ann, testDefaults())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return cfg
}

// A native sidecar named in mtls.demo/containers gets the mount and the env
// vars and sets the group; the plain init container is left alone; a second
// run changes nothing. (The golden case lives in pkg/inject, whose pipeline
// sees whole pods.)
func TestNativeSidecarGetsTheCertificate(t *testing.T) {
	ann := map[string]string{annotations.Enable: "true", annotations.Containers: "tls-proxy"}
	pod := nativeSidecarPod(ann)
	original := pod.DeepCopy()
	res, errs := Mutate(pod, mustParse(t, ann), nil, testOptions)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if diff := cmp.Diff(original, pod); diff != "" {
		t.Fatalf("Mutate changed its input:\n%s", diff)
	}
	sidecar, migrate, app := res.Pod.Spec.InitContainers[1], res.Pod.Spec.InitContainers[0], res.Pod.Spec.Containers[0]
	if len(sidecar.VolumeMounts) != 1 || sidecar.VolumeMounts[0].Name != VolumeName || len(sidecar.Env) != 4 {
		t.Errorf("native sidecar: mounts %v, env %v; want the %s mount and 4 env vars", sidecar.VolumeMounts, sidecar.Env, VolumeName)
	}
	if len(migrate.VolumeMounts)+len(migrate.Env)+len(app.VolumeMounts)+len(app.Env) != 0 {
		t.Errorf("containers not named were changed: migrate %+v, app %+v", migrate, app)
	}
	if got := res.Attributes[AttrFSGroup]; got != "2000" {
		t.Errorf("fs-group %q, want the native sidecar's group 2000", got)
	}
	again, errs := Mutate(res.Pod, mustParse(t, res.Pod.Annotations), nil, testOptions)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if diff := cmp.Diff(res.Pod, again.Pod); diff != "" {
		t.Errorf("second Mutate changed the pod:\n%s", diff)
	}
}

func TestNativeSidecarsInTheGroupRuleAndTheImageSwap(t *testing.T) {
	for name, tc := range map[string]struct {
		ann       map[string]string
		appGroup  *int64
		wantField string
		wantText  string
	}{
		"a native sidecar and the app in different groups": {
			ann: map[string]string{annotations.Containers: "app,tls-proxy"}, appGroup: new(int64(1000)), wantField: "spec.initContainers[1].securityContext.runAsGroup",
			wantText: "container tls-proxy runs as group 2000",
		},
		"a demo image but only a native sidecar selected": {
			ann: map[string]string{annotations.Containers: "tls-proxy", annotations.App: "frontend"}, wantField: "metadata.annotations[mtls.demo/app]",
			wantText: "selects native sidecars only",
		},
		"a name that is nowhere": {
			ann: map[string]string{annotations.Containers: "envoy"}, wantField: "metadata.annotations[mtls.demo/containers]",
			wantText: `"envoy": no container of that name; the pod's containers are: app, tls-proxy (native sidecar)`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			tc.ann[annotations.Enable] = "true"
			pod := nativeSidecarPod(tc.ann)
			if tc.appGroup != nil {
				pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsGroup: tc.appGroup}
			}
			_, errs := Mutate(pod, mustParse(t, tc.ann), nil, testOptions)
			if len(errs) != 1 || errs[0].Field != tc.wantField || !strings.Contains(errs[0].Error(), tc.wantText) {
				t.Fatalf("got %v, want one error on %s saying %q", errs, tc.wantField, tc.wantText)
			}
		})
	}
}

func TestMeshProxies(t *testing.T) {
	for _, name := range []string{"istio-proxy", "istio-init", "istio-validation", "linkerd-proxy", "linkerd-init", "linkerd-network-validator"} {
		if !IsMeshProxy(name) {
			t.Errorf("%s is not treated as a mesh proxy", name)
		}
	}
	for _, name := range []string{"app", "istio-like-proxy", "proxy", "envoy"} {
		if IsMeshProxy(name) {
			t.Errorf("%s is treated as a mesh proxy", name)
		}
	}
}

// TestAttributeKeysListsEveryAttributeWritten: with every annotation set,
// the volume carries exactly AttributeKeys, which the webhook's metric
// labels and the chart's CEL guard rely on.
func TestAttributeKeysListsEveryAttributeWritten(t *testing.T) {
	d := annotations.NewDefaults()
	d.Issuer.Name = "ca"
	cfg, _, errs := annotations.Parse(map[string]string{
		annotations.Enable: "true", annotations.CommonName: "web.shop.svc", annotations.DNSNames: "web.shop.svc",
		annotations.URISANs: "urn:x", annotations.FSGroup: "1000",
	}, d)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
	res, errs := Mutate(pod, cfg, nil, Options{ClusterDomain: "cluster.local"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var written []string
	for _, v := range res.Pod.Spec.Volumes {
		if v.Name == VolumeName {
			for k := range v.CSI.VolumeAttributes {
				written = append(written, k)
			}
		}
	}
	want := AttributeKeys()
	slices.Sort(written)
	slices.Sort(want)
	if !slices.Equal(written, want) {
		t.Errorf("the webhook writes %v, AttributeKeys lists %v", written, want)
	}
}
