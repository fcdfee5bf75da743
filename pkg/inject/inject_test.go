package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/pkg/policy"
)

func newInjector(t *testing.T, allowed ...string) *Injector {
	t.Helper()
	pol, err := policy.New(allowed, false, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	d := annotations.NewDefaults()
	d.Issuer.Name = "demo-ca"
	return &Injector{
		Defaults: d,
		Options:  mutate.Options{FrontendImage: "fe:1", BackendImage: "be:1", ClusterDomain: "cluster.local"},
		Policy:   pol,
	}
}

func pod(ann map[string]string, mutators ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-5d4c-", Namespace: "shop", Annotations: ann},
		Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "web:1"}}},
	}
	for _, m := range mutators {
		m(p)
	}
	return p
}

func opted(kv ...string) map[string]string {
	m := map[string]string{annotations.Enable: "true"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestBadInputIsRefusedByName walks the bad inputs of the contract through
// the whole pipeline: each is refused, and the message names the field (the
// annotation, or the pod field for a volume clash) and the bad value.
func TestBadInputIsRefusedByName(t *testing.T) {
	tests := map[string]struct {
		pod       *corev1.Pod
		allowed   []string
		wantField string
		wantText  []string
	}{
		"enable yes": {
			pod: pod(map[string]string{annotations.Enable: "yes"}), wantField: "metadata.annotations[mtls.demo/enable]",
			wantText: []string{`"yes"`, `"true"`, `"false"`},
		},
		"duration forever": {
			pod: pod(opted(annotations.Duration, "forever")), wantField: "metadata.annotations[mtls.demo/duration]",
			wantText: []string{`"forever"`, "Go duration"},
		},
		"renew-before not shorter than duration": {
			pod: pod(opted(annotations.Duration, "2h", annotations.RenewBefore, "3h")), wantField: "metadata.annotations[mtls.demo/renew-before]",
			wantText: []string{`"3h"`, "shorter than the certificate duration (2h0m0s"},
		},
		"RSA 1024": {
			pod: pod(opted(annotations.KeyAlgorithm, "RSA", annotations.KeySize, "1024")), wantField: "metadata.annotations[mtls.demo/key-size]",
			wantText: []string{`"1024"`, "2048 to 8192"},
		},
		"key-algorithm DSA": {
			pod: pod(opted(annotations.KeyAlgorithm, "DSA")), wantField: "metadata.annotations[mtls.demo/key-algorithm]",
			wantText: []string{`"DSA"`, `"ECDSA"`, `"RSA"`},
		},
		"containers naming a container that does not exist": {
			pod: pod(opted(annotations.Containers, "proxy")), wantField: "metadata.annotations[mtls.demo/containers]",
			wantText: []string{`"proxy"`, "the pod's containers are: app"},
		},
		"mount-path certs": {
			pod: pod(opted(annotations.MountPath, "certs")), wantField: "metadata.annotations[mtls.demo/mount-path]",
			wantText: []string{`"certs"`, "absolute path"},
		},
		"mount-path /": {
			pod: pod(opted(annotations.MountPath, "/")), wantField: "metadata.annotations[mtls.demo/mount-path]",
			wantText: []string{`"/"`, "root directory"},
		},
		"dns-names Bad_Name": {
			pod: pod(opted(annotations.DNSNames, "Bad_Name")), wantField: "metadata.annotations[mtls.demo/dns-names]",
			wantText: []string{`"Bad_Name"`, "RFC 1123"},
		},
		"uri-sans ::": {
			pod: pod(opted(annotations.URISANs, "::")), wantField: "metadata.annotations[mtls.demo/uri-sans]",
			wantText: []string{`"::"`, "absolute URI"},
		},
		"issuer-kind Foo": {
			pod: pod(opted(annotations.IssuerKind, "Foo")), wantField: "metadata.annotations[mtls.demo/issuer-kind]",
			wantText: []string{`"Foo"`, `"Issuer"`, `"ClusterIssuer"`},
		},
		"a ClusterIssuer the default policy does not allow": {
			pod: pod(opted(annotations.Issuer, "corp-ca", annotations.IssuerKind, "ClusterIssuer")), wantField: "metadata.annotations[mtls.demo/issuer]",
			wantText: []string{"ClusterIssuer/corp-ca", "--allowed-issuers", "Issuer/*"},
		},
		"an Issuer outside an explicit allow list": {
			pod: pod(opted(annotations.Issuer, "rogue-ca")), allowed: []string{"Issuer/team-*", "ClusterIssuer/mesh-ca"},
			wantField: "metadata.annotations[mtls.demo/issuer]",
			wantText:  []string{"Issuer/rogue-ca", "Issuer/team-*, ClusterIssuer/mesh-ca"},
		},
		"app database": {
			pod: pod(opted(annotations.App, "database")), wantField: "metadata.annotations[mtls.demo/app]",
			wantText: []string{`"database"`, `"frontend"`, `"backend"`},
		},
		"a volume mtls-certs the webhook did not create": {
			pod: pod(opted(), func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "mtls-certs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			}),
			wantField: "spec.volumes[0].name",
			wantText:  []string{`"mtls-certs"`, "not a csi.cert-manager.io volume", "mtls.demo/enable"},
		},
		"a DNS name in another namespace": {
			pod: pod(opted(annotations.DNSNames, "payments.bank.svc")), wantField: "metadata.annotations[mtls.demo/dns-names]",
			wantText: []string{`"payments.bank.svc"`, "outside namespace shop", "--allow-any-dns-names"},
		},
		"a common name that only grows too long once the pod name is known": {
			pod: pod(opted(annotations.CommonName, "${POD_NAME}."+strings.Repeat("x", 50))), wantField: "metadata.annotations[mtls.demo/common-name]",
			wantText: []string{"web-5d4c-xxxxx." + strings.Repeat("x", 50), "at most 64"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := newInjector(t, tc.allowed...).Inject(tc.pod, nil)
			if out.Injected || out.Pod != nil {
				t.Fatal("the pod was injected")
			}
			if len(out.Errors) == 0 {
				t.Fatal("no error")
			}
			var found bool
			for _, e := range out.Errors {
				if e.Field != tc.wantField {
					continue
				}
				found = true
				msg := e.Error()
				for _, want := range tc.wantText {
					if !strings.Contains(msg, want) {
						t.Errorf("message %q lacks %q", msg, want)
					}
				}
			}
			if !found {
				t.Errorf("no error on %s; got %v", tc.wantField, out.Errors)
			}
		})
	}
}

func TestInjectAcceptsThePodsOwnNamespaceAndTemplates(t *testing.T) {
	p := pod(opted(annotations.DNSNames, "web,web.shop,web.${POD_NAMESPACE}.svc,web.shop.svc.cluster.local,*.web.shop.svc"))
	out := newInjector(t).Inject(p, nil)
	if !out.Injected || len(out.Errors) > 0 {
		t.Fatalf("refused: %v", out.Errors)
	}
	if got := out.Attributes[mutate.AttrDNSNames]; !strings.Contains(got, "web.${POD_NAMESPACE}.svc") {
		t.Errorf("templates must reach the driver unexpanded, got %q", got)
	}
}

func TestInjectAllowsAnyDNSNameWhenTold(t *testing.T) {
	inj := newInjector(t)
	inj.Policy.AllowAnyDNSNames = true
	out := inj.Inject(pod(opted(annotations.DNSNames, "api.example.com")), nil)
	if !out.Injected {
		t.Fatalf("refused: %v", out.Errors)
	}
}

func TestInjectLeavesAPodThatDidNotOptIn(t *testing.T) {
	for _, ann := range []map[string]string{nil, {annotations.Enable: "false"}, {"other": "x"}} {
		out := newInjector(t).Inject(pod(ann), nil)
		if out.Injected || out.Pod != nil || len(out.Errors) > 0 {
			t.Errorf("annotations %v: got %+v", ann, out)
		}
	}
}

func TestInjectReportsEveryCause(t *testing.T) {
	out := newInjector(t).Inject(pod(opted(annotations.Duration, "forever", annotations.App, "database", annotations.MountPath, "/")), nil)
	if len(out.Errors) != 3 {
		t.Fatalf("want 3 errors, got %v", out.Errors)
	}
}

func TestInjectKeepsWarningsOfARefusedPod(t *testing.T) {
	out := newInjector(t).Inject(pod(opted("mtls.demo/isuer", "x", annotations.App, "database")), nil)
	if len(out.Errors) == 0 || len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0], "did you mean mtls.demo/issuer?") {
		t.Fatalf("errors %v warnings %v", out.Errors, out.Warnings)
	}
}
