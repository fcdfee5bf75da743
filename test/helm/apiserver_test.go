package helm

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/internal/cli"
	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

var (
	envOnce sync.Once
	envErr  string
	envCli  client.Client
)

// apiServer starts one envtest control plane (etcd + kube-apiserver from
// KUBEBUILDER_ASSETS, cert-manager's CRDs installed) for the package and
// returns a client that creates with strict field validation, so an unknown
// or misspelt field in a chart is an error. It fails, never skips, when the
// binaries are missing.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	envOnce.Do(func() {
		assets := os.Getenv("KUBEBUILDER_ASSETS")
		if assets == "" {
			assets = filepath.Join(chart.RepoRoot(), "bin")
		}
		for _, b := range []string{"etcd", "kube-apiserver"} {
			if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
				envErr = "control-plane binary " + filepath.Join(assets, b) + " missing: run `make k8s-bins` (KUBEBUILDER_ASSETS=" + assets + ")"
				return
			}
		}
		env, err := controlplane.Environment(assets, "")
		if err != nil {
			envErr = err.Error()
			return
		}
		cfg, err := env.Start()
		if err != nil {
			envErr = "start envtest: " + err.Error()
			return
		}
		stopEnv = func() error { return controlplane.Stop(env) }
		c, err := client.New(cfg, client.Options{})
		if err != nil {
			envErr = "client: " + err.Error()
			return
		}
		envCli = client.WithFieldValidation(c, metav1.FieldValidationStrict)
	})
	if envErr != "" {
		t.Fatal(envErr)
	}
	return envCli
}

var stopEnv func() error

func TestMain(m *testing.M) {
	code := m.Run()
	if stopEnv != nil {
		_ = stopEnv()
	}
	os.Exit(code)
}

func ensureNamespace(t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	// No controller-manager runs: create the default ServiceAccount that the
	// ServiceAccount admission plugin requires for pods.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create default ServiceAccount in %s: %v", name, err)
	}
}

// apply creates every object (namespaces first, pods last) and fails on
// any error, including strict field validation errors.
func apply(t *testing.T, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace":
			return 0
		case "ServiceAccount":
			return 1
		case "Pod":
			return 3
		}
		return 2
	}
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ensureNamespace(t, c, o.GetName(), o.GetLabels())
			continue
		}
		if err := c.Create(context.Background(), o.DeepCopy()); err != nil {
			t.Errorf("create %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// TestChartsApplyToAPIServer renders both charts with the defaults and every
// value set, each as its own release in its own namespace, and creates every
// object on a real API server with cert-manager's CRDs.
func TestChartsApplyToAPIServer(t *testing.T) {
	helm := chart.HelmBinary(t)
	c := apiServer(t)
	// webhook-hardened.yaml names this PriorityClass; the helm test pod uses
	// it and the Priority admission plugin resolves it.
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "mtls-webhook-critical"}, Value: 1000000}
	if err := c.Create(context.Background(), pc); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	i := 0
	for _, name := range []string{chart.WebhookChart, chart.DemoChart} {
		for _, vf := range append([]string{""}, valueSets[name]...) {
			i++
			opts := chart.Options{Release: "r" + string(rune('a'+i)), Namespace: "apply-" + string(rune('a'+i))}
			label := name + "/defaults"
			if vf != "" {
				opts.Values = []string{chart.ValuesFile(vf)}
				label = name + "/" + vf
			}
			t.Run(label, func(t *testing.T) {
				objs := chart.Render(t, helm, name, opts)
				if len(objs) < 4 {
					t.Fatalf("only %d objects rendered", len(objs))
				}
				ensureNamespace(t, c, opts.Namespace, nil)
				apply(t, c, objs)
				// Leave no admission object behind: the webhook points at a
				// Service with no pods, and this release's policy would
				// answer for the next test's pods.
				for _, o := range objs {
					switch o.GetKind() {
					case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
						if err := c.Delete(context.Background(), o.DeepCopy()); err != nil {
							t.Errorf("delete %s: %v", o.GetName(), err)
						}
					}
				}
			})
		}
	}
}

func optInPod(ns, enable string, withVolume bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "canary", Namespace: ns},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if enable != "" {
		p.Annotations = map[string]string{"mtls.demo/enable": enable}
	}
	if withVolume {
		// The state the webhook produces, from the webhook's own pipeline
		// under its default flags and the chart's default issuer: its
		// status annotation and the mtls-certs volume with the pod's own
		// SPIFFE ID.
		in, err := cli.InjectorFor([]string{"--default-issuer=demo-ca"})
		if err != nil {
			panic(err)
		}
		src := p.DeepCopy()
		src.Annotations = map[string]string{"mtls.demo/enable": "true"}
		out := in.Inject(src, nil)
		if !out.Injected {
			panic(fmt.Sprintf("the webhook refused the canary pod: %v", out.Errors))
		}
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations["mtls.demo/status"] = out.Pod.Annotations["mtls.demo/status"]
		p.Spec.Volumes = out.Pod.Spec.Volumes
		if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].Name != "mtls-certs" {
			panic(fmt.Sprintf("the webhook wrote volumes %v", p.Spec.Volumes))
		}
	}
	return p
}

func csiVolume(name string, attrs map[string]string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: "csi.cert-manager.io", ReadOnly: ptr.To(true), VolumeAttributes: attrs,
	}}}
}

// forgedPod is a pod, opted in or not, that carries a csi.cert-manager.io
// volume of its own making: another namespace's SPIFFE ID from a
// ClusterIssuer.
func forgedPod(ns, enable string) *corev1.Pod {
	p := optInPod(ns, enable, false)
	p.Name = "forged"
	p.Spec.Volumes = []corev1.Volume{csiVolume("certs", map[string]string{
		"csi.cert-manager.io/issuer-name": "corp-ca", "csi.cert-manager.io/issuer-kind": "ClusterIssuer",
		"csi.cert-manager.io/uri-sans": "spiffe://cluster.local/ns/bank/sa/frontend",
	})}
	return p
}

// createDryRun creates pod with server-side dry run: the full admission
// chain runs, nothing is stored.
func createDryRun(c client.Client, pod *corev1.Pod) error {
	return c.Create(context.Background(), pod.DeepCopy(), client.DryRunAll)
}

func createObjectDryRun(c client.Client, obj client.Object) error {
	return c.Create(context.Background(), obj.DeepCopyObject().(client.Object), client.DryRunAll)
}

func objectRefusedWith(c client.Client, obj client.Object, want string) func() error {
	return func() error {
		err := createObjectDryRun(c, obj)
		if err == nil {
			return errors.New("object was admitted")
		}
		if !strings.Contains(err.Error(), want) {
			return errors.New("error does not contain " + want + ": " + err.Error())
		}
		return nil
	}
}

func podTemplate(enable string) corev1.PodTemplateSpec {
	tpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "canary"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyOnFailure,
			Containers:    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if enable != "" {
		tpl.Annotations = map[string]string{"mtls.demo/enable": enable}
	}
	return tpl
}

func deploymentWithTemplate(ns, enable string) *appsv1.Deployment {
	tpl := podTemplate(enable)
	tpl.Spec.RestartPolicy = corev1.RestartPolicyAlways
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "canary", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "canary"}},
			Template: tpl,
		},
	}
}

func cronJobWithTemplate(ns, enable string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "canary", Namespace: ns},
		Spec: batchv1.CronJobSpec{
			Schedule:    "@hourly",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate(enable)}},
		},
	}
}

// eventually retries f until it returns nil: webhook configurations and
// policies take effect when the API server's informers see them.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	eventuallyWithin(t, 30*time.Second, what, f)
}

func eventuallyWithin(t *testing.T, wait time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, wait, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func refusedWith(c client.Client, pod *corev1.Pod, want ...string) func() error {
	return func() error {
		err := createDryRun(c, pod)
		if err == nil {
			return errors.New("pod was admitted")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				return errors.New("error does not contain " + w + ": " + err.Error())
			}
		}
		return nil
	}
}

// TestAdmissionConfiguration exercises the chart's own admission objects on
// the real API server. No webhook server runs here, so a pod that the
// MutatingWebhookConfiguration selects fails with "failed calling webhook"
// (failurePolicy Fail): that is how this test sees which pods the
// matchConditions and namespaceSelector send to the webhook. The real
// webhook is tested in test/integration.
func TestAdmissionConfiguration(t *testing.T) {
	helm := chart.HelmBinary(t)
	c := apiServer(t)
	const release, releaseNS = "adm", "mtls-adm"
	ensureNamespace(t, c, releaseNS, nil)
	ensureNamespace(t, c, "kube-system", nil)
	ensureNamespace(t, c, "team-a", nil)
	ensureNamespace(t, c, "opted-out", map[string]string{"mtls.demo/injection": "disabled"})
	ensureNamespace(t, c, "team-x", map[string]string{"team": "excluded"})
	ensureNamespace(t, c, "cert-manager", nil)

	// The workloads webhook fails closed here so that a call to it (to a
	// Service nobody serves) shows as a refusal. Injection is narrowed by
	// every knob it has (a namespace label, extra namespace expressions, an
	// objectSelector a pod author controls): none may narrow the guard.
	objs := chart.Render(t, helm, chart.WebhookChart, chart.Options{Release: release, Namespace: releaseNS,
		Set: []string{"workloadValidation.failurePolicy=Fail",
			"extraNamespaceSelectorExpressions[0].key=team",
			"extraNamespaceSelectorExpressions[0].operator=NotIn",
			"extraNamespaceSelectorExpressions[0].values={excluded}",
			"mutatingWebhook.objectSelector.matchExpressions[0].key=mtls.demo/skip",
			"mutatingWebhook.objectSelector.matchExpressions[0].operator=DoesNotExist",
		}})
	var admission []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			admission = append(admission, o)
		}
	}
	if len(admission) != 7 {
		t.Fatalf("want the MWC, the pod and workload VWCs, two policies and their bindings, got %d objects", len(admission))
	}
	apply(t, c, admission)
	// Leave nothing behind for the next test: the policies would answer for
	// its pods too.
	t.Cleanup(func() {
		for _, o := range admission {
			_ = c.Delete(context.Background(), o.DeepCopy())
		}
	})
	named := func(k, name string) *unstructured.Unstructured {
		i := slices.IndexFunc(admission, func(o *unstructured.Unstructured) bool { return o.GetKind() == k && o.GetName() == name })
		if i < 0 {
			t.Fatalf("no %s %s rendered", k, name)
		}
		return admission[i]
	}
	mwc := named("MutatingWebhookConfiguration", "adm-mtls-webhook")
	vwc := named("ValidatingWebhookConfiguration", "adm-mtls-webhook")
	wvc := named("ValidatingWebhookConfiguration", "adm-mtls-webhook-workloads")

	t.Run("the workloads webhook selects workloads whose pod template opted in", func(t *testing.T) {
		called := `failed calling webhook "workloads.mtls.demo"`
		for _, enable := range []string{"true", "yes"} {
			eventually(t, "Deployment template enable="+enable, objectRefusedWith(c, deploymentWithTemplate("team-a", enable), called))
			eventually(t, "CronJob job template enable="+enable, objectRefusedWith(c, cronJobWithTemplate("team-a", enable), called))
		}
		for _, enable := range []string{"", "false"} {
			if err := createObjectDryRun(c, deploymentWithTemplate("team-a", enable)); err != nil {
				t.Errorf("Deployment with template enable=%q sent to the webhook: %v", enable, err)
			}
			if err := createObjectDryRun(c, cronJobWithTemplate("team-a", enable)); err != nil {
				t.Errorf("CronJob with template enable=%q sent to the webhook: %v", enable, err)
			}
		}
		if err := createObjectDryRun(c, deploymentWithTemplate("kube-system", "true")); err != nil {
			t.Errorf("kube-system Deployment sent to the webhook: %v", err)
		}
	})

	t.Run("webhook selects opted-in pods", func(t *testing.T) {
		for _, enable := range []string{"true", "yes"} {
			eventually(t, "enable="+enable+" reaches the webhook",
				refusedWith(c, optInPod("team-a", enable, false), `failed calling webhook "inject.mtls.demo"`))
		}
	})
	t.Run("the validating webhook sees every pod with a csi.cert-manager.io volume", func(t *testing.T) {
		// The CEL guard refuses the same pods, and the API server runs the
		// policies before the webhooks: without its binding for this
		// subtest, the refusal can only come from the webhook call. (With
		// it, the result depended on whether the binding was loaded yet.)
		i := slices.IndexFunc(admission, func(o *unstructured.Unstructured) bool {
			return o.GetKind() == "ValidatingAdmissionPolicyBinding" && strings.HasSuffix(o.GetName(), "-csi-guard")
		})
		if i < 0 {
			t.Fatal("no -csi-guard ValidatingAdmissionPolicyBinding in the chart")
		}
		guard := admission[i]
		if err := c.Delete(context.Background(), guard.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Create(context.Background(), guard.DeepCopy()); err != nil {
				t.Fatalf("restoring the guard's binding: %v", err)
			}
		}()
		for _, enable := range []string{"", "false"} {
			eventually(t, "forged volume with enable="+enable+" reaches verify.mtls.demo",
				refusedWith(c, forgedPod("team-a", enable), `failed calling webhook "verify.mtls.demo"`))
		}
		// Out of injection's scope, never out of the guard's.
		skip := forgedPod("team-a", "")
		skip.Labels = map[string]string{"mtls.demo/skip": "yes"}
		for what, p := range map[string]*corev1.Pod{
			"a namespace labelled mtls.demo/injection=disabled":        forgedPod("opted-out", ""),
			"a namespace extraNamespaceSelectorExpressions leaves out": forgedPod("team-x", ""),
			"a pod the objectSelector leaves out":                      skip,
			"kube-system":                                              forgedPod("kube-system", ""),
		} {
			eventually(t, what+" reaches verify.mtls.demo", refusedWith(c, p, `failed calling webhook "verify.mtls.demo"`))
		}
		eventually(t, "cert-manager's own namespace is not sent to the guard", func() error {
			return createDryRun(c, forgedPod("cert-manager", ""))
		})
	})
	t.Run("webhook and policy leave other pods alone", func(t *testing.T) {
		for _, p := range []*corev1.Pod{
			optInPod("team-a", "", false),
			optInPod("team-a", "false", false),
			optInPod("opted-out", "true", false),
			optInPod(releaseNS, "true", false),
			optInPod("kube-system", "true", false),
		} {
			// Eventually: the API server drops the admission objects earlier
			// tests deleted asynchronously, as it loads new ones. A pod this
			// release's configuration really refuses stays refused, and the
			// wait times out with the refusal.
			eventually(t, fmt.Sprintf("pod in %s with mtls.demo/enable=%q admitted", p.Namespace, p.Annotations["mtls.demo/enable"]),
				func() error { return createDryRun(c, p) })
		}
	})

	// From here the webhooks are absent: only the policies guard.
	for _, o := range []*unstructured.Unstructured{mwc, vwc, wvc} {
		if err := c.Delete(context.Background(), o.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("the CEL guard refuses forged csi.cert-manager.io volumes on any pod", func(t *testing.T) {
		guard := "ValidatingAdmissionPolicy 'adm-mtls-webhook-csi-guard'"
		eventually(t, "plain pod", refusedWith(c, forgedPod("team-a", ""), guard, "only mtls-webhook may add a csi.cert-manager.io volume"))
		eventually(t, "enable false", refusedWith(c, forgedPod("team-a", "false"), guard))
		// Opted in and even carrying a status annotation: the volume's
		// name and its SPIFFE ID still give it away.
		second := optInPod("team-a", "true", true)
		second.Spec.Volumes = append(second.Spec.Volumes, forgedPod("team-a", "").Spec.Volumes...)
		eventually(t, "opted-in pod with a second volume", refusedWith(c, second, guard, "a pod may have one csi.cert-manager.io volume"))
		optedIn := optInPod("team-a", "true", true)
		optedIn.Spec.Volumes[0].CSI.VolumeAttributes["csi.cert-manager.io/uri-sans"] = "spiffe://cluster.local/ns/bank/sa/frontend"
		eventually(t, "opted-in pod with another namespace's SPIFFE ID", refusedWith(c, optedIn, guard,
			"the pod's own SPIFFE ID spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME} first"))
		withCN := optInPod("team-a", "true", true)
		withCN.Spec.Volumes[0].CSI.VolumeAttributes["csi.cert-manager.io/common-name"] = "admin"
		eventually(t, "a common name the webhook does not allow", refusedWith(c, withCN, guard, "no common name"))
		for _, ns := range []string{"opted-out", "team-x", "kube-system"} {
			eventually(t, "forged volume in "+ns, refusedWith(c, forgedPod(ns, ""), guard))
		}
		if err := createDryRun(c, forgedPod("cert-manager", "")); err != nil {
			t.Errorf("pod in cert-manager's namespace refused: %v", err)
		}
	})
	t.Run("the CEL guard alone refuses every forged volume of the list", func(t *testing.T) {
		guard := "ValidatingAdmissionPolicy 'adm-mtls-webhook-csi-guard'"
		// The guard is loaded (the subtest above saw it refuse): each case
		// gets a short retry only, so that a wrong answer fails in seconds.
		for _, f := range forgedVolumes {
			t.Run(f.name, func(t *testing.T) {
				p := optInPod("team-a", "true", true)
				f.edit(p.Spec.Volumes[0].CSI.VolumeAttributes)
				eventuallyWithin(t, 3*time.Second, f.name, refusedWith(c, p, guard, f.rule))
			})
		}
		// And the webhook's own volumes pass, templates and all.
		for what, edit := range map[string]func(map[string]string){
			"as written": func(map[string]string) {},
			"its own names": func(a map[string]string) {
				a["csi.cert-manager.io/dns-names"] = "web.${POD_NAMESPACE}.svc,web.team-a.svc.cluster.local,*.team-a.svc.cluster.local"
			},
			"RSA 3072": func(a map[string]string) { rsa(a, "3072") },
			"a 2m certificate": func(a map[string]string) {
				a["csi.cert-manager.io/duration"] = "2m"
				a["csi.cert-manager.io/renew-before"] = "1m30s"
			},
		} {
			p := optInPod("team-a", "true", true)
			edit(p.Spec.Volumes[0].CSI.VolumeAttributes)
			eventuallyWithin(t, 3*time.Second, "the webhook's volume "+what+" admitted", func() error { return createDryRun(c, p) })
		}
	})
	t.Run("policy refuses an opted-in pod the webhook did not mutate", func(t *testing.T) {
		eventually(t, "policy refusal", refusedWith(c, optInPod("team-a", "true", false),
			"ValidatingAdmissionPolicy 'adm-mtls-webhook-require-csi'",
			`no "mtls-certs" volume of the csi.cert-manager.io CSI driver`,
			"the mtls-webhook did not inject it",
			"kubectl -n mtls-adm get deployment,pods"))
	})
	t.Run("policy admits the pod in the state the webhook produces", func(t *testing.T) {
		// Stands in for the webhook: the pod carries the mtls-certs
		// csi.cert-manager.io volume that the webhook would have injected.
		if err := createDryRun(c, optInPod("team-a", "true", true)); err != nil {
			t.Fatalf("mutated-looking pod refused: %v", err)
		}
		wrong := optInPod("team-a", "true", true)
		wrong.Spec.Volumes[0].CSI.Driver = "other.csi.example.com"
		eventually(t, "wrong driver refused", refusedWith(c, wrong, "did not inject"))
	})

	t.Run("fail-open webhook still ends in refusal by the policy", func(t *testing.T) {
		open := chart.RenderWebhookChart(t, helm, chart.Options{Release: release, Namespace: releaseNS,
			Values: []string{chart.ValuesFile("webhook-fail-open.yaml")}})
		if string(*open.Webhooks[0].FailurePolicy) != "Ignore" {
			t.Fatalf("failurePolicy = %s", *open.Webhooks[0].FailurePolicy)
		}
		// A webhook that is reached but fails (500), counted, so the test
		// knows the API server really went through the fail-open
		// configuration before the policy refused the pod.
		var calls atomic.Int64
		broken := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			calls.Add(1)
			http.Error(w, "broken on purpose", http.StatusInternalServerError)
		}))
		defer broken.Close()
		url := broken.URL + "/mutate-pods"
		open.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url,
			CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: broken.Certificate().Raw})}
		if err := c.Create(context.Background(), open); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Delete(context.Background(), open) }()
		refused := refusedWith(c, optInPod("team-a", "true", false), "the mtls-webhook did not inject it")
		eventually(t, "fail-open webhook called, then the policy refusal", func() error {
			if err := refused(); err != nil {
				return err
			}
			if calls.Load() == 0 {
				return errors.New("the API server has not called the fail-open webhook yet")
			}
			return nil
		})
		if err := createDryRun(c, optInPod("team-a", "", false)); err != nil {
			t.Fatalf("plain pod refused: %v", err)
		}
	})
}

func rsa(a map[string]string, size string) {
	a["csi.cert-manager.io/key-algorithm"] = "RSA"
	a["csi.cert-manager.io/key-size"] = size
	a["csi.cert-manager.io/key-usages"] = "digital signature,key encipherment,server auth,client auth"
}

// forgedVolumes is the list of hand-written csi.cert-manager.io volumes the
// CEL guard must refuse on its own, with both webhooks unreachable and the
// chart's defaults. Each starts from the volume the webhook writes for an
// opted-in pod (so only the one edit can be what is refused), and names the
// rule its refusal must quote.
var forgedVolumes = []struct {
	name, rule string
	edit       func(map[string]string)
}{
	{"a CA: is-ca true with cert sign from a ClusterIssuer", "attribute rule", func(a map[string]string) {
		a["csi.cert-manager.io/is-ca"] = "true"
		a["csi.cert-manager.io/key-usages"] = "cert sign,crl sign,digital signature"
		a["csi.cert-manager.io/issuer-kind"] = "ClusterIssuer"
	}},
	{"is-ca false written out", "attribute rule", func(a map[string]string) { a["csi.cert-manager.io/is-ca"] = "false" }},
	{"cert sign among the key usages", "key usage rule", func(a map[string]string) {
		a["csi.cert-manager.io/key-usages"] = "digital signature,server auth,client auth,cert sign"
	}},
	{"the key usages spaced differently", "key usage rule", func(a map[string]string) {
		a["csi.cert-manager.io/key-usages"] = "digital signature, server auth, client auth"
	}},
	{"a ClusterIssuer the allowlist does not name", "issuer rule", func(a map[string]string) {
		a["csi.cert-manager.io/issuer-kind"] = "ClusterIssuer"
	}},
	{"an issuer of another API group", "issuer rule", func(a map[string]string) {
		a["csi.cert-manager.io/issuer-group"] = "awspca.cert-manager.io"
	}},
	{"no issuer name", "issuer rule", func(a map[string]string) { a["csi.cert-manager.io/issuer-name"] = "" }},
	{"O=system:masters", "subject rule", func(a map[string]string) { a["csi.cert-manager.io/organizations"] = "system:masters" }},
	{"a literal subject", "subject rule", func(a map[string]string) { a["csi.cert-manager.io/literal-subject"] = "CN=admin,O=system:masters" }},
	{"a common name", "subject rule", func(a map[string]string) { a["csi.cert-manager.io/common-name"] = "postgres" }},
	{"a serial number", "subject rule", func(a map[string]string) { a["csi.cert-manager.io/serialnumber"] = "1" }},
	{"IP SANs", "attribute rule", func(a map[string]string) { a["csi.cert-manager.io/ip-sans"] = "10.0.0.1" }},
	{"reuse of the private key", "attribute rule", func(a map[string]string) { a["csi.cert-manager.io/reuse-private-key"] = "true" }},
	{"a PKCS#12 bundle", "attribute rule", func(a map[string]string) { a["csi.cert-manager.io/pkcs12-enable"] = "true" }},
	{"an attribute outside the driver's prefix", "attribute rule", func(a map[string]string) { a["example.com/anything"] = "x" }},
	{"the lifetime left to the driver's default", "attribute rule", func(a map[string]string) {
		delete(a, "csi.cert-manager.io/duration")
	}},
	{"a 10-year lifetime", "lifetime rule", func(a map[string]string) { a["csi.cert-manager.io/duration"] = "87600h" }},
	{"a lifetime below the minimum", "lifetime rule", func(a map[string]string) {
		a["csi.cert-manager.io/duration"] = "30s"
		a["csi.cert-manager.io/renew-before"] = "10s"
	}},
	{"a lifetime that is no Go duration", "lifetime rule", func(a map[string]string) { a["csi.cert-manager.io/duration"] = "1y" }},
	{"renewal every 1ms: renew-before 59.999s of 1m", "renewal rule", func(a map[string]string) {
		a["csi.cert-manager.io/duration"] = "1m"
		a["csi.cert-manager.io/renew-before"] = "59.999s"
	}},
	{"renew-before longer than the lifetime", "renewal rule", func(a map[string]string) {
		a["csi.cert-manager.io/duration"] = "1h"
		a["csi.cert-manager.io/renew-before"] = "2h"
	}},
	{"RSA 1024", "key rule", func(a map[string]string) { rsa(a, "1024") }},
	{"RSA 16384", "key rule", func(a map[string]string) { rsa(a, "16384") }},
	{"ECDSA 224", "key rule", func(a map[string]string) { a["csi.cert-manager.io/key-size"] = "224" }},
	{"Ed25519", "key rule", func(a map[string]string) { a["csi.cert-manager.io/key-algorithm"] = "Ed25519" }},
	{"a wildcard in another namespace", "DNS rule", func(a map[string]string) {
		a["csi.cert-manager.io/dns-names"] = "*.bank.svc.cluster.local"
	}},
	{"a Service name of another namespace", "DNS rule", func(a map[string]string) {
		a["csi.cert-manager.io/dns-names"] = "api.bank.svc.cluster.local"
	}},
	{"a bare label another namespace's clients dial", "DNS rule", func(a map[string]string) {
		a["csi.cert-manager.io/dns-names"] = "payments"
	}},
	{"localhost", "DNS rule", func(a map[string]string) { a["csi.cert-manager.io/dns-names"] = "localhost" }},
	{"kubernetes.default", "DNS rule", func(a map[string]string) {
		a["csi.cert-manager.io/dns-names"] = "web.${POD_NAMESPACE}.svc, kubernetes.default"
	}},
	{"a name outside the cluster", "DNS rule", func(a map[string]string) { a["csi.cert-manager.io/dns-names"] = "login.example.com" }},
	{"a two-label prefix in the own namespace", "DNS rule", func(a map[string]string) {
		a["csi.cert-manager.io/dns-names"] = "a.b.team-a.svc"
	}},
	{"a template the driver does not know", "DNS rule", func(a map[string]string) {
		a["csi.cert-manager.io/dns-names"] = "web.${NODE_NAME}.svc"
	}},
	{"65 DNS names", "DNS rule", func(a map[string]string) {
		names := make([]string, 65)
		for i := range names {
			names[i] = fmt.Sprintf("s%d.team-a.svc", i)
		}
		a["csi.cert-manager.io/dns-names"] = strings.Join(names, ",")
	}},
	{"another namespace's SPIFFE ID", "URI rule", func(a map[string]string) {
		a["csi.cert-manager.io/uri-sans"] = "spiffe://cluster.local/ns/bank/sa/frontend"
	}},
	{"a second SPIFFE ID after a comma and a space", "URI rule", func(a map[string]string) {
		a["csi.cert-manager.io/uri-sans"] += ", spiffe://cluster.local/ns/bank/sa/frontend"
	}},
	{"a second SPIFFE ID after a tab", "URI rule", func(a map[string]string) {
		a["csi.cert-manager.io/uri-sans"] += ",\tspiffe://cluster.local/ns/bank/sa/frontend"
	}},
	{"a URI where none is allowed", "URI rule", func(a map[string]string) {
		a["csi.cert-manager.io/uri-sans"] += ",urn:shop:web"
	}},
	{"a key file elsewhere", "file rule", func(a map[string]string) { a["csi.cert-manager.io/privatekey-file"] = "../../etc/key" }},
	{"an fs-group of root", "file rule", func(a map[string]string) { a["csi.cert-manager.io/fs-group"] = "0" }},
}

// TestCSIGuardFollowsTheWebhooksFlags renders the chart with
// config.allowedURISANs and config.allowCommonName set and checks, on the
// real API server, that its CEL guard follows them: URIs after the pod's
// own SPIFFE ID and a common name pass, a second SPIFFE ID never does.
func TestCSIGuardFollowsTheWebhooksFlags(t *testing.T) {
	helm := chart.HelmBinary(t)
	c := apiServer(t)
	const release, releaseNS = "flags", "mtls-flags"
	ensureNamespace(t, c, releaseNS, nil)
	ensureNamespace(t, c, "team-f", nil)
	objs := chart.Render(t, helm, chart.WebhookChart, chart.Options{Release: release, Namespace: releaseNS,
		Set: []string{"config.allowedURISANs={urn:*}", "config.allowCommonName=true"}})
	var guard []*unstructured.Unstructured
	for _, o := range objs {
		if strings.HasSuffix(o.GetName(), "-csi-guard") {
			guard = append(guard, o)
		}
	}
	if len(guard) != 2 {
		t.Fatalf("want the csi-guard policy and its binding, got %d objects", len(guard))
	}
	apply(t, c, guard)
	t.Cleanup(func() {
		for _, o := range guard {
			_ = c.Delete(context.Background(), o.DeepCopy())
		}
	})
	own := "spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}"
	withURIs := func(uris, cn string) *corev1.Pod {
		p := optInPod("team-f", "true", true)
		p.Spec.Volumes[0].CSI.VolumeAttributes["csi.cert-manager.io/uri-sans"] = uris
		if cn != "" {
			p.Spec.Volumes[0].CSI.VolumeAttributes["csi.cert-manager.io/common-name"] = cn
		}
		return p
	}
	for _, sep := range []string{",", ", ", ",\t", ",\n", ",urn:a,", ", urn:a , "} {
		eventually(t, fmt.Sprintf("a second SPIFFE ID after %q refused", sep),
			refusedWith(c, withURIs(own+sep+"SPIFFE://cluster.local/ns/bank/sa/x", ""),
				"ValidatingAdmissionPolicy 'flags-mtls-webhook-csi-guard'", "never another spiffe:// ID"))
	}
	eventually(t, "a URI without a scheme refused", refusedWith(c, withURIs(own+",//cluster.local/ns/bank", ""), "flags-mtls-webhook-csi-guard"))
	eventually(t, "the SPIFFE ID not first refused", refusedWith(c, withURIs("urn:a,"+own, ""), "flags-mtls-webhook-csi-guard"))
	named := withURIs(own+",urn:shop:web", "web.team-f.svc")
	named.Spec.Volumes[0].CSI.VolumeAttributes["csi.cert-manager.io/dns-names"] = "web.team-f.svc"
	if err := createDryRun(c, named); err != nil {
		t.Errorf("allowed URI and common name refused: %v", err)
	}
}
