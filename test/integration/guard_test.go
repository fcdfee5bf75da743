package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/mtls-demo/mtls-webhook/internal/cli"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// chartAdmission is the rest of the chart's admission objects: the
// ValidatingWebhookConfiguration and the ValidatingAdmissionPolicies with
// their bindings, as the chart renders them with its defaults, and the
// Deployment the chart runs the webhook with.
type chartAdmission struct {
	vwc        *admissionregistrationv1.ValidatingWebhookConfiguration
	policies   []*admissionregistrationv1.ValidatingAdmissionPolicy
	bindings   []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	deployment *appsv1.Deployment
}

func renderChartAdmission(t testing.TB) chartAdmission {
	t.Helper()
	var out chartAdmission
	for _, o := range chart.Render(t, chart.HelmBinary(t), chart.WebhookChart, chart.Options{}) {
		var into any
		switch o.GetKind() {
		case "ValidatingWebhookConfiguration":
			if strings.HasSuffix(o.GetName(), "-workloads") {
				continue // workloads.mtls.demo: test/integration/workload_test.go
			}
			out.vwc = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			into = out.vwc
		case "ValidatingAdmissionPolicy":
			p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
			out.policies, into = append(out.policies, p), p
		case "ValidatingAdmissionPolicyBinding":
			b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
			out.bindings, into = append(out.bindings, b), b
		case "Deployment":
			out.deployment = &appsv1.Deployment{}
			into = out.deployment
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
			t.Fatalf("rendered %s: %v", o.GetKind(), err)
		}
	}
	if out.vwc == nil || len(out.policies) != 2 || len(out.bindings) != 2 || out.deployment == nil {
		t.Fatalf("the chart rendered %v VWC, %d policies, %d bindings: want one, two, two, and a Deployment", out.vwc != nil, len(out.policies), len(out.bindings))
	}
	return out
}

// narrow adds caseLabel In values to a namespace selector.
func narrow(sel *metav1.LabelSelector, values ...string) *metav1.LabelSelector {
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
		Key: caseLabel, Operator: metav1.LabelSelectorOpIn, Values: values})
	return sel
}

// installVerify registers the chart's ValidatingWebhookConfiguration for
// url, narrowed to namespaces labelled caseLabel=name, and removes it when
// the test ends.
func installVerify(t testing.TB, cs kubernetes.Interface, a chartAdmission, name, url string, caBundle []byte) {
	t.Helper()
	vwc := a.vwc.DeepCopy()
	vwc.Name, vwc.Annotations = "it-"+name, nil
	for i := range vwc.Webhooks {
		wh := &vwc.Webhooks[i]
		wh.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
		wh.NamespaceSelector = narrow(wh.NamespaceSelector, name)
	}
	api := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := api.Create(ctxFor(t, 10*time.Second), vwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ValidatingWebhookConfiguration: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := api.Delete(ctx, vwc.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting ValidatingWebhookConfiguration %s: %v", vwc.Name, err)
		}
	})
}

// installPolicies creates the chart's policies and bindings, named after
// name, the bindings narrowed to caseLabel=name (and the extra values), and
// removes them when the test ends.
func installPolicies(t testing.TB, cs kubernetes.Interface, a chartAdmission, name string, extra ...string) {
	t.Helper()
	api := cs.AdmissionregistrationV1()
	ctx := ctxFor(t, 30*time.Second)
	for i, p := range a.policies {
		p, b := p.DeepCopy(), a.bindings[i].DeepCopy()
		// Bindings render in the policies' order; pair them by name.
		for _, cand := range a.bindings {
			if cand.Spec.PolicyName == a.policies[i].Name {
				b = cand.DeepCopy()
			}
		}
		suffix := strings.TrimPrefix(p.Name, "mtls-mtls-webhook")
		p.Name = "it-" + name + suffix
		b.Name, b.Spec.PolicyName = p.Name, p.Name
		b.Spec.MatchResources.NamespaceSelector = narrow(b.Spec.MatchResources.NamespaceSelector, append([]string{name}, extra...)...)
		if _, err := api.ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = api.ValidatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{})
			_ = api.ValidatingAdmissionPolicies().Delete(ctx, p.Name, metav1.DeleteOptions{})
		})
	}
}

func csiVolume(name string, attrs map[string]string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: mutate.Driver, ReadOnly: new(true), VolumeAttributes: attrs,
	}}}
}

// forged is the attacker's volume: another namespace's SPIFFE ID from a
// ClusterIssuer.
func forged(name string) corev1.Volume {
	return csiVolume(name, map[string]string{
		mutate.AttrIssuerName: "corp-ca", mutate.AttrIssuerKind: "ClusterIssuer",
		mutate.AttrURISANs: "spiffe://cluster.local/ns/bank/sa/frontend",
	})
}

// webhookPod is an opted-in pod in the state the webhook leaves it: its
// status annotation and the mtls-certs volume, written by the webhook's own
// pipeline under its default flags.
func webhookPod(t testing.TB, name string) *corev1.Pod {
	t.Helper()
	in, err := cli.InjectorFor([]string{"--default-issuer=ca"})
	if err != nil {
		t.Fatal(err)
	}
	out := in.Inject(pod(name, optIn("ca")), nil)
	if !out.Injected {
		t.Fatalf("the webhook's pipeline refused %s: %v", name, out.Errors)
	}
	return out.Pod
}

// ensureNamedNamespace creates the namespace name unless it exists.
func ensureNamedNamespace(t testing.TB, cs kubernetes.Interface, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctxFor(t, 10*time.Second), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func withVolumes(p *corev1.Pod, vols ...corev1.Volume) *corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, vols...)
	return p
}

// TestForgedCSIVolumesAreRefused: a csi.cert-manager.io volume written by
// hand asks the issuer for a certificate in any name. With the chart's
// admission objects on a real API server, it is refused on plain pods, on
// enable=false pods and next to the injected volume of an opted-in pod,
// by the validating webhook and by the CEL guard each on its own; the pods
// the webhook injects are stored; kube-system and the chart's own
// Deployment are untouched, even while the webhook is unreachable.
func TestForgedCSIVolumesAreRefused(t *testing.T) {
	cs, _, c := clients(t)
	a := renderChartAdmission(t)
	verifyURL := strings.TrimSuffix(suite.webhookURL, "/mutate-pods") + "/validate-pods"
	ctx := ctxFor(t, 3*time.Minute)

	t.Run("the webhooks alone", func(t *testing.T) {
		ns := namespace(t, cs, "forged-wh", nil)
		createIssuer(t, c, ns, "ca", cmmeta.ConditionTrue)
		installChartWebhook(t, cs, "forged-wh", ns)
		installVerify(t, cs, a, "forged-wh", verifyURL, suite.webhook.ca.CertPEM)
		eventually(t, 30*time.Second, "the API server to call verify.mtls.demo", func(ctx context.Context) error {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, withVolumes(pod("probe-forged", nil), forged("certs")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), `admission webhook "verify.mtls.demo" denied the request`) {
				return notYet("not refused by verify.mtls.demo yet", err)
			}
			return nil
		})

		before := admissions(t, suite.metricsURL)
		for _, tc := range []struct {
			name, field, text string
			pod               *corev1.Pod
		}{
			{"plain", "spec.volumes[0].csi.driver", "only mtls-webhook may add a csi.cert-manager.io volume",
				withVolumes(pod("plain", nil), forged("certs"))},
			{"enable-false", "spec.volumes[0].csi.driver", "only mtls-webhook may add a csi.cert-manager.io volume",
				withVolumes(pod("enable-false", map[string]string{annotations.Enable: "false"}), forged(mutate.VolumeName))},
			// The mutating webhook sees the opted-in pod first and refuses
			// the second volume before anything is injected.
			{"opted-in", "spec.volumes[0].name", "a pod may have one csi.cert-manager.io volume",
				withVolumes(pod("opted-in", optIn("ca")), forged("certs"))},
		} {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, tc.pod, metav1.CreateOptions{})
			errorContains(t, err, tc.field, tc.text)
			if !apierrors.IsInvalid(err) {
				t.Errorf("%s: want a 422 Invalid, got %v", tc.name, err)
			}
			if _, err := cs.CoreV1().Pods(ns).Get(ctx, tc.pod.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("%s: stored despite the forged volume (get: %v)", tc.name, err)
			}
		}

		// What the webhook injects passes its own verification, which the
		// verified counter shows was really consulted.
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod("injected", optIn("ca")), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, got, "ca", annotations.DefaultMountPath)
		after := admissions(t, suite.metricsURL)
		if d := after["verified"] - before["verified"]; d != 1 {
			t.Errorf("verified counter moved by %v for one injected pod, want 1 (before %v, after %v)", d, before, after)
		}
		if d := after["denied"] - before["denied"]; d != 3 {
			t.Errorf("denied counter moved by %v for three forged pods, want 3", d)
		}
	})

	t.Run("the validating webhook catches what CEL cannot", func(t *testing.T) {
		// No mutating webhook (as when it fails open): a hand-written
		// mtls-certs volume that carries the status annotation and the
		// pod's own SPIFFE ID passes the CEL guard, but asks a
		// ClusterIssuer the webhook's policy forbids.
		ns := namespace(t, cs, "forged-cel", nil)
		installPolicies(t, cs, a, "forged-cel")
		installVerify(t, cs, a, "forged-cel", verifyURL, suite.webhook.ca.CertPEM)
		p := pod("sneaky", optIn("ca", "status", "injected-0123456789"))
		withVolumes(p, csiVolume(mutate.VolumeName, map[string]string{
			mutate.AttrIssuerName: "corp-ca", mutate.AttrIssuerKind: "ClusterIssuer", mutate.AttrIssuerGroup: "cert-manager.io",
			mutate.AttrURISANs: annotations.SPIFFEID("cluster.local"),
		}))
		eventually(t, 30*time.Second, "the validating webhook's refusal", func(ctx context.Context) error {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), `volumeAttributes[csi.cert-manager.io/issuer-kind]`) {
				return notYet("not refused on the issuer kind yet", err)
			}
			return nil
		})
	})

	t.Run("the CEL guard alone, while the webhook is unreachable", func(t *testing.T) {
		// Both webhooks point at a port nothing listens on, with the
		// chart's failurePolicy Fail; only the policies answer.
		ns := namespace(t, cs, "forged-down", nil)
		dead := "https://127.0.0.1:1/validate-pods"
		installPolicies(t, cs, a, "forged-down")
		eventually(t, 30*time.Second, "the CEL guard", func(ctx context.Context) error {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, withVolumes(pod("plain", nil), forged("certs")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), "csi-guard") {
				return notYet("not refused by the guard yet", err)
			}
			return nil
		})
		for _, p := range []*corev1.Pod{
			withVolumes(pod("plain", nil), forged("certs")),
			withVolumes(pod("opted-in", optIn("ca", "status", "injected-0123456789")), forged(mutate.VolumeName)),
		} {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			errorContains(t, err, "ValidatingAdmissionPolicy 'it-forged-down-csi-guard'")
		}

		// Now the validating webhook is registered too, unreachable: the
		// namespace's pods with a certificate volume fail closed...
		installVerify(t, cs, a, "forged-down", dead, suite.webhook.ca.CertPEM)
		// A pod that looks injected in every way CEL can see: the
		// webhook's own volume, from its own pipeline.
		looksInjected := webhookPod(t, "plain2")
		eventually(t, 30*time.Second, "the unreachable validating webhook", func(ctx context.Context) error {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, looksInjected, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), `failed calling webhook "verify.mtls.demo"`) {
				return notYet("not failing closed yet", err)
			}
			return nil
		})
		// ...and so do kube-system's, labelled like the test's namespaces:
		// the guard is not the injection's scope, and leaves out only
		// cert-manager's and the csi-driver's namespaces. There a forged
		// volume is stored as sent.
		labelNamespace(t, cs, "kube-system", caseLabel, "forged-down")
		_, err := cs.CoreV1().Pods("kube-system").Create(ctx, withVolumes(pod("it-forged-down", nil), forged("certs")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		errorContains(t, err, "ValidatingAdmissionPolicy 'it-forged-down-csi-guard'")
		ensureNamedNamespace(t, cs, "cert-manager")
		labelNamespace(t, cs, "cert-manager", caseLabel, "forged-down")
		sys, err := cs.CoreV1().Pods("cert-manager").Create(ctx, withVolumes(pod("it-forged-down", nil), forged("certs")), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("pod in cert-manager's namespace refused: %v", err)
		}
		if len(sys.Spec.Volumes) != 1 || sys.Spec.Volumes[0].CSI == nil || sys.Spec.Volumes[0].CSI.VolumeAttributes[mutate.AttrIssuerName] != "corp-ca" {
			t.Errorf("cert-manager pod changed: %+v", sys.Spec.Volumes)
		}
		_ = cs.CoreV1().Pods("cert-manager").Delete(ctx, sys.Name, metav1.DeleteOptions{})

		// The chart's own Deployment pod template and a pod shaped like
		// the csi-driver's (hostPath volumes, no certificate volume of its
		// own) start, here in a namespace the webhooks serve and while
		// they are down: nothing in them matches the webhooks' conditions.
		own := &corev1.Pod{ObjectMeta: a.deployment.Spec.Template.ObjectMeta, Spec: a.deployment.Spec.Template.Spec}
		own.Name = "webhook-own"
		own.Spec.ServiceAccountName = ""
		driver := pod("csi-driver", nil)
		hostPath := corev1.HostPathDirectoryOrCreate
		driver.Spec.Volumes = []corev1.Volume{{Name: "plugin-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: "/var/lib/kubelet/plugins/cert-manager-csi-driver", Type: &hostPath}}}}
		for _, p := range []*corev1.Pod{own, driver} {
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("pod %s refused: %v", p.Name, err)
			}
		}
	})
}

// notYet is eventually's error for a refusal that has not come (yet).
func notYet(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s: the pod was admitted", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}
