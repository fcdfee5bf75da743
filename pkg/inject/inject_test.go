package inject

import (
	"maps"
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
			wantText: []string{`"1024"`, "2048 to 4096", "--max-rsa-key-size"},
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
			wantText: []string{`"payments.bank.svc"`, "L.shop, L.shop.svc or L.shop.svc.cluster.local", "--allowed-dns-names"},
		},
		"a pod name that expands to two labels": {
			pod:       pod(opted(annotations.DNSNames, "${POD_NAME}.local"), func(p *corev1.Pod) { p.Name = "x.bank.svc.cluster" }),
			wantField: "metadata.annotations[mtls.demo/dns-names]",
			wantText:  []string{`"${POD_NAME}.local"`, `expands to "x.bank.svc.cluster.local" for this pod`, "L is exactly one label"},
		},
		"another namespace's SPIFFE ID": {
			pod:       pod(opted(annotations.URISANs, "spiffe://cluster.local/ns/bank/sa/frontend")),
			wantField: "metadata.annotations[mtls.demo/uri-sans]",
			wantText:  []string{`"spiffe://cluster.local/ns/bank/sa/frontend"`, "its own, spiffe://cluster.local/ns/shop/sa/web"},
		},
		"a common name without --allow-common-name": {
			pod: pod(opted(annotations.CommonName, "postgres")), wantField: "metadata.annotations[mtls.demo/common-name]",
			wantText: []string{`"postgres"`, "--allow-common-name"},
		},
		"a windows pod": {
			pod:       pod(opted(), func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }),
			wantField: "spec.os.name",
			wantText:  []string{"no Windows plugin", "mtls.demo/enable"},
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
	p := pod(opted(annotations.DNSNames, "web.shop,web.${POD_NAMESPACE}.svc,web.shop.svc.cluster.local,*.shop.svc.cluster.local,${POD_NAME}.shop.svc"))
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

func TestVerify(t *testing.T) {
	inj := newInjector(t)
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-svc", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}},
	}
	// stored is what the API server stores after the webhook: the pipeline's
	// pod, named by the API server.
	stored := func(ann map[string]string) *corev1.Pod {
		p := pod(ann, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} })
		out := inj.Inject(p, []corev1.Service{svc})
		if !out.Injected {
			t.Fatalf("refused: %v", out.Errors)
		}
		out.Pod.Name = "web-5d4c-b7x2q"
		return out.Pod
	}
	forged := func(name string, attrs map[string]string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: mutate.Driver, ReadOnly: new(true), VolumeAttributes: attrs}}}
	}
	setAttr := func(k, v string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Volumes[0].CSI.VolumeAttributes = maps.Clone(p.Spec.Volumes[0].CSI.VolumeAttributes)
			p.Spec.Volumes[0].CSI.VolumeAttributes[k] = v
		}
	}
	tests := map[string]struct {
		pod       *corev1.Pod
		change    func(*corev1.Pod)
		wantField string // "" = allowed
		wantText  string
	}{
		"a plain pod without the driver's volumes":                     {pod: pod(nil)},
		"what the webhook injected, with names derived from a Service": {pod: stored(opted())},
		"what the webhook injected, with explicit names and RSA":       {pod: stored(opted(annotations.DNSNames, "api.shop,api.shop.svc", annotations.KeyAlgorithm, "RSA"))},
		"a forged volume on a plain pod": {
			pod: pod(nil, func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{forged("certs", map[string]string{mutate.AttrIssuerName: "corp-ca"})}
			}),
			wantField: "spec.volumes[0].csi.driver", wantText: "only mtls-webhook may add a csi.cert-manager.io volume",
		},
		"a forged mtls-certs volume on a pod with enable false": {
			pod:       pod(map[string]string{annotations.Enable: "false"}, func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{forged(mutate.VolumeName, nil)} }),
			wantField: "spec.volumes[0].csi.driver", wantText: "or opt in with the annotation",
		},
		"a second driver volume next to the injected one": {
			pod:       stored(opted()),
			change:    func(p *corev1.Pod) { p.Spec.Volumes = append(p.Spec.Volumes, forged("extra", nil)) },
			wantField: "spec.volumes[1].name", wantText: "a pod may have one csi.cert-manager.io volume",
		},
		"another namespace's SPIFFE ID written into the injected volume": {
			pod:       stored(opted()),
			change:    setAttr(mutate.AttrURISANs, "spiffe://cluster.local/ns/bank/sa/frontend"),
			wantField: "spec.volumes[0].csi.volumeAttributes[csi.cert-manager.io/uri-sans]", wantText: "written or changed by something other than mtls-webhook",
		},
		"a ClusterIssuer written into the injected volume": {
			pod:       stored(opted()),
			change:    setAttr(mutate.AttrIssuerKind, "ClusterIssuer"),
			wantField: "spec.volumes[0].csi.volumeAttributes[csi.cert-manager.io/issuer-kind]", wantText: `is "ClusterIssuer", but mtls-webhook writes "Issuer"`,
		},
		"a common name added to the injected volume": {
			pod:       stored(opted()),
			change:    setAttr(mutate.AttrCommonName, "admin"),
			wantField: "spec.volumes[0].csi.volumeAttributes[csi.cert-manager.io/common-name]", wantText: "never writes it",
		},
		"derived names of another namespace": {
			pod:       stored(opted()),
			change:    setAttr(mutate.AttrDNSNames, "web-svc.shop,payments.bank.svc"),
			wantField: "metadata.annotations[mtls.demo/dns-names]", wantText: `"payments.bank.svc"`,
		},
		"derived names of a Service created since are fine": {
			pod:    stored(opted()),
			change: setAttr(mutate.AttrDNSNames, "web-svc.shop,web-svc.shop.svc,other.shop,other.shop.svc"),
		},
		"a writable injected volume": {
			pod:       stored(opted()),
			change:    func(p *corev1.Pod) { p.Spec.Volumes[0].CSI.ReadOnly = nil },
			wantField: "spec.volumes[0].csi.readOnly",
		},
		"a hand-written mtls-certs volume with the webhook's exact attributes is what the webhook writes": {
			pod: func() *corev1.Pod {
				p := stored(opted())
				p.Annotations = map[string]string{annotations.Enable: "true"}
				return p
			}(),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := tc.pod.DeepCopy()
			if tc.change != nil {
				tc.change(p)
			}
			errs := inj.Verify(p)
			if tc.wantField == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("allowed, want a refusal on %s", tc.wantField)
			}
			if errs[0].Field != tc.wantField || !strings.Contains(errs[0].Error(), tc.wantText) {
				t.Errorf("got %v\nwant an error on %s containing %q", errs, tc.wantField, tc.wantText)
			}
		})
	}
}

// TestInjectReportsMutationProblemsWithAnnotationProblems is the issue's
// example: a bad duration, a bad key size and a container that does not
// exist are refused together, not the annotations first and the container
// after they are fixed. Checks that depend on an annotation in error stay
// out: their answer would be about a default the user did not write.
func TestInjectReportsMutationProblemsWithAnnotationProblems(t *testing.T) {
	groups := func(p *corev1.Pod) {
		p.Spec.Containers = []corev1.Container{
			{Name: "app", Image: "web:1", SecurityContext: &corev1.SecurityContext{RunAsGroup: new(int64(1))}},
			{Name: "proxy", Image: "proxy:1", SecurityContext: &corev1.SecurityContext{RunAsGroup: new(int64(2))},
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: annotations.DefaultMountPath}}},
		}
	}
	tests := map[string]struct {
		pod  *corev1.Pod
		want []string // the fields refused, in order
	}{
		"bad duration, bad key size, missing container": {
			pod: pod(opted(annotations.Duration, "forever", annotations.KeySize, "1000", annotations.Containers, "ghost")),
			want: []string{"metadata.annotations[mtls.demo/duration]", "metadata.annotations[mtls.demo/key-size]",
				"metadata.annotations[mtls.demo/containers]"},
		},
		"a bad container name and a missing one": {
			pod:  pod(opted(annotations.Containers, "Bad_Name,ghost")),
			want: []string{"metadata.annotations[mtls.demo/containers]", "metadata.annotations[mtls.demo/containers]"},
		},
		"no valid container name selects nothing": {
			pod:  pod(opted(annotations.Containers, "Bad_Name", annotations.Duration, "x"), groups),
			want: []string{"metadata.annotations[mtls.demo/duration]", "metadata.annotations[mtls.demo/containers]"},
		},
		"mount conflict and group conflict next to a bad key size": {
			pod: pod(opted(annotations.KeySize, "1"), groups),
			want: []string{"metadata.annotations[mtls.demo/key-size]", "metadata.annotations[mtls.demo/mount-path]",
				"spec.containers[1].securityContext.runAsGroup"},
		},
		"a bad mount path is not also judged at the default path": {
			pod:  pod(opted(annotations.MountPath, "certs"), groups),
			want: []string{"metadata.annotations[mtls.demo/mount-path]", "spec.containers[1].securityContext.runAsGroup"},
		},
		"a bad fs-group is not also told the groups conflict": {
			pod:  pod(opted(annotations.FSGroup, "0"), groups),
			want: []string{"metadata.annotations[mtls.demo/fs-group]", "metadata.annotations[mtls.demo/mount-path]"},
		},
		"a bad app role is named once": {
			pod:  pod(opted(annotations.App, "database")),
			want: []string{"metadata.annotations[mtls.demo/app]"},
		},
		"an issuer outside the policy next to a bad duration": {
			pod:  pod(opted(annotations.Issuer, "mesh", annotations.IssuerKind, "ClusterIssuer", annotations.Duration, "x")),
			want: []string{"metadata.annotations[mtls.demo/duration]", "metadata.annotations[mtls.demo/issuer]"},
		},
		"a windows pod with a bad annotation": {
			pod:  pod(opted(annotations.KeySize, "1"), func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }),
			want: []string{"metadata.annotations[mtls.demo/key-size]", "spec.os.name"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := newInjector(t).Inject(tc.pod, nil)
			if out.Injected {
				t.Fatal("injected")
			}
			var got []string
			for _, e := range out.Errors {
				got = append(got, e.Field)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("refused on\n  %s\nwant\n  %s\n(%v)", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "), out.Errors)
			}
		})
	}
}

// TestCheckTemplateMovesPathsOntoTheTemplate: a workload's template is
// judged as the pod it makes, and every path lands under the template.
func TestCheckTemplateMovesPathsOntoTheTemplate(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"},
			Annotations: opted(annotations.KeySize, "1000", "mtls.demo/isuer", "x")},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "web:1"}}},
	}
	pod := PodFromTemplate("shop", "web", tmpl)
	if pod.Namespace != "shop" || pod.GenerateName != "web-" || pod.Name != "" || pod.Spec.ServiceAccountName != "web" || pod.Labels["app"] != "web" {
		t.Fatalf("pod from template: %+v", pod.ObjectMeta)
	}
	path, ok := TemplatePath(KindCronJob)
	if !ok || path.String() != "spec.jobTemplate.spec.template" {
		t.Fatalf("CronJob template path %v %v", path, ok)
	}
	out := newInjector(t).CheckTemplate(pod, path, nil)
	if len(out.Errors) != 1 || out.Errors[0].Field != "spec.jobTemplate.spec.template.metadata.annotations[mtls.demo/key-size]" {
		t.Fatalf("errors %v", out.Errors)
	}
	if len(out.Warnings) != 1 || !strings.HasPrefix(out.Warnings[0], "spec.jobTemplate.spec.template: annotation mtls.demo/isuer") {
		t.Errorf("warnings %q", out.Warnings)
	}
	if _, ok := TemplatePath("Pod"); ok {
		t.Error("a Pod has no template path")
	}
}
