package csivalidate

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "api-6f7d-", Namespace: "shop"},
		Spec:       corev1.PodSpec{ServiceAccountName: "api"},
	}
}

func goodAttrs() map[string]string {
	cfg := annotations.Config{
		Enabled: true, Issuer: annotations.IssuerRef{Name: "ca", Kind: "Issuer", Group: "cert-manager.io"},
		URISANs: []string{annotations.SPIFFEID("cluster.local")}, Duration: time.Hour, RenewBefore: 20 * time.Minute,
		KeyAlgorithm: "ECDSA", KeySize: 256, MountPath: "/var/run/mtls", UseMTLS: true,
	}
	return mutate.Attributes(cfg, []string{"api", "api.shop"})
}

func TestCheckAcceptsWhatTheWebhookInjects(t *testing.T) {
	if errs := Check(testPod(), goodAttrs()); len(errs) > 0 {
		t.Fatalf("the driver's rules refuse the webhook's own attributes: %v", errs)
	}
}

// The driver's errors are moved onto the annotation the user controls.
func TestCheckMapsDriverErrorsToAnnotations(t *testing.T) {
	tests := map[string]struct {
		edit      func(map[string]string)
		wantField string
		wantText  string
	}{
		"the driver's own key size rule": {
			edit:      func(a map[string]string) { a[mutate.AttrKeyAlg], a[mutate.AttrKeySize] = "RSA", "1024" },
			wantField: "metadata.annotations[mtls.demo/key-size]", wantText: "csi.cert-manager.io/key-size",
		},
		"the driver's required issuer name": {
			edit:      func(a map[string]string) { delete(a, mutate.AttrIssuerName) },
			wantField: "metadata.annotations[mtls.demo/issuer]", wantText: "issuer-name is a required field",
		},
		"the driver's duration parser": {
			edit:      func(a map[string]string) { a[mutate.AttrDuration] = "1 day" },
			wantField: "metadata.annotations[mtls.demo/duration]", wantText: "valid duration",
		},
		"the request generator's URI parser": {
			edit:      func(a map[string]string) { a[mutate.AttrURISANs] = "spiffe://ok/x,%zz" },
			wantField: "metadata.annotations[mtls.demo/uri-sans]", wantText: "cannot build a certificate request",
		},
		"the request generator's template expansion": {
			edit:      func(a map[string]string) { a[mutate.AttrCommonName] = "${NODE_NAME}" },
			wantField: "metadata.annotations[mtls.demo/common-name]", wantText: `undefined variable "NODE_NAME"`,
		},
		"a DNS name that is too long once the namespace is known": {
			edit:      func(a map[string]string) { a[mutate.AttrDNSNames] = strings.Repeat("a", 60) + "-${POD_NAMESPACE}" },
			wantField: "metadata.annotations[mtls.demo/dns-names]", wantText: "longer than 63 characters",
		},
		"an IP address passed off as a DNS name": {
			edit:      func(a map[string]string) { a[mutate.AttrDNSNames] = "10.0.0.1" },
			wantField: "metadata.annotations[mtls.demo/dns-names]", wantText: "is an IP address",
		},
		"a certificate that names nobody": {
			edit:      func(a map[string]string) { delete(a, mutate.AttrURISANs); delete(a, mutate.AttrDNSNames) },
			wantField: "metadata.annotations[mtls.demo/uri-sans]", wantText: "would name nobody",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			attrs := goodAttrs()
			tc.edit(attrs)
			errs := Check(testPod(), attrs)
			if len(errs) == 0 {
				t.Fatal("accepted")
			}
			if errs[0].Field != tc.wantField || !strings.Contains(errs[0].Error(), tc.wantText) {
				t.Errorf("got %v; want an error on %s mentioning %q", errs, tc.wantField, tc.wantText)
			}
		})
	}
}

func TestVolumeContextUsesAPlaceholderBeforeThePodIsNamed(t *testing.T) {
	vc := VolumeContext(testPod(), goodAttrs())
	if got := vc["csi.storage.k8s.io/pod.name"]; got != "api-6f7d-"+PlaceholderSuffix {
		t.Errorf("pod name %q", got)
	}
	if vc["csi.storage.k8s.io/serviceAccount.name"] != "api" || vc["csi.storage.k8s.io/pod.namespace"] != "shop" {
		t.Errorf("identity keys wrong: %v", vc)
	}
	named := testPod()
	named.Name = "api-0"
	if got := VolumeContext(named, nil)["csi.storage.k8s.io/pod.name"]; got != "api-0" {
		t.Errorf("a named pod keeps its name, got %q", got)
	}
}
