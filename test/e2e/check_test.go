//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/mtls-demo/mtls-webhook/internal/check"
	"github.com/mtls-demo/mtls-webhook/internal/cli"
)

// The chart's release in the suite's cluster (internal/stack): the
// MutatingWebhookConfiguration, Deployment and Service are all named so.
const webhookRelease = "mtls-webhook"

// runCheck runs `mtls-webhook check -o json` (the binary's own code path,
// against the suite's API server through KUBECONFIG) with the suite's
// release and the demo namespace as canary, plus extra flags, and returns
// the exit code and the decoded report.
func runCheck(ctx context.Context, t *testing.T, timeout time.Duration, extra ...string) (int, check.Report) {
	t.Helper()
	code, out, errOut := runCheckRaw(ctx, timeout, append([]string{"-o", "json"}, extra...)...)
	var rep check.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check -o json printed no report (exit %d): %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
	}
	t.Logf("check exit %d:\n%s", code, table(rep))
	return code, rep
}

func runCheckRaw(ctx context.Context, timeout time.Duration, extra ...string) (int, string, string) {
	args := append([]string{"check", "--kubeconfig", os.Getenv("KUBECONFIG"),
		"--namespace", suite.webhookNamespace, "--release", webhookRelease,
		"--canary-namespace", suite.demoNamespace, "--issuer", "demo-ca",
		"--timeout", timeout.String()}, extra...)
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

func table(rep check.Report) string {
	var b bytes.Buffer
	_ = rep.Write(&b, check.Table)
	return b.String()
}

// wantCheck asserts the status of one check and that its message names the
// cause.
func wantCheck(t *testing.T, rep check.Report, name string, status check.Status, inMessage ...string) {
	t.Helper()
	r, found := rep.Get(name)
	if !found {
		t.Errorf("report has no check %s", name)
		return
	}
	if r.Status != status {
		t.Errorf("check %s: status %s, want %s (%s)", name, r.Status, status, r.Message)
	}
	for _, want := range inMessage {
		if !strings.Contains(r.Message, want) {
			t.Errorf("check %s: message %q does not name %q", name, r.Message, want)
		}
	}
}

// wantHealthy asserts that check passes, every check ok but the list of
// bypassed pods (a warning at worst, which other tests may leave behind).
func wantHealthy(ctx context.Context, t *testing.T) {
	t.Helper()
	code, rep := runCheck(ctx, t, 2*time.Minute)
	if code != 0 || !rep.OK {
		t.Errorf("check: exit %d, ok %v on a healthy install; failed: %v", code, rep.OK, rep.Failed())
	}
	for _, name := range []string{check.CertManagerAPI, check.CSIDriver, check.WebhookConfig, check.WebhookTLS,
		check.WebhookPods, check.WebhookInjects, check.Issuers} {
		wantCheck(t, rep, name, check.OK)
	}
	if r, _ := rep.Get(check.BypassedPods); r.Status == check.Fail {
		t.Errorf("bypassed-pods failed: %s", r.Message)
	}
}

func TestCheckPassesOnAHealthyInstall(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	wantHealthy(ctx, t)
	// The canary came back injected with the issuer asked for.
	code, rep := runCheck(ctx, t, time.Minute, "--required-issuers", "Issuer/"+suite.demoNamespace+"/demo-ca")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	wantCheck(t, rep, check.WebhookInjects, check.OK, `issuer "demo-ca"`, suite.demoNamespace)
	wantCheck(t, rep, check.Issuers, check.OK, "Issuer "+suite.demoNamespace+"/demo-ca")

	// The table a person reads, and its verdict.
	code, out, errOut := runCheckRaw(ctx, time.Minute)
	if code != 0 {
		t.Fatalf("table run: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"CHECK", "STATUS", "MESSAGE", check.WebhookInjects, "PASS: mtls-webhook " + suite.webhookNamespace + "/" + webhookRelease} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// Without the caBundle the API server cannot verify the webhook: check
// names the empty caBundle. cainjector would put it back within moments,
// so its annotation is taken away too while the check runs.
func TestCheckFailsWithoutCABundle(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	mwcs := kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	orig, err := mwcs.Get(ctx, webhookRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const injectCA = "cert-manager.io/inject-ca-from"
	if orig.Annotations[injectCA] == "" || len(orig.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Fatalf("MutatingWebhookConfiguration %s is not as installed: annotation %q, caBundle %d bytes", orig.Name, orig.Annotations[injectCA], len(orig.Webhooks[0].ClientConfig.CABundle))
	}
	update := func(change func(*admissionregistrationv1.MutatingWebhookConfiguration)) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := mwcs.Get(context.Background(), webhookRelease, metav1.GetOptions{})
			if err != nil {
				return err
			}
			change(cur)
			_, err = mwcs.Update(context.Background(), cur, metav1.UpdateOptions{})
			return err
		})
	}
	t.Cleanup(func() {
		err := update(func(m *admissionregistrationv1.MutatingWebhookConfiguration) {
			m.Annotations[injectCA] = orig.Annotations[injectCA]
			for i := range m.Webhooks {
				m.Webhooks[i].ClientConfig.CABundle = orig.Webhooks[i].ClientConfig.CABundle
			}
		})
		if err != nil {
			t.Errorf("restoring MutatingWebhookConfiguration %s: %v", webhookRelease, err)
		}
		waitInjecting(t)
	})
	err = update(func(m *admissionregistrationv1.MutatingWebhookConfiguration) {
		delete(m.Annotations, injectCA)
		for i := range m.Webhooks {
			m.Webhooks[i].ClientConfig.CABundle = nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	code, rep := runCheck(ctx, t, 10*time.Second)
	if code != 1 || rep.OK {
		t.Errorf("check: exit %d, ok %v without a caBundle; want exit 1", code, rep.OK)
	}
	wantCheck(t, rep, check.WebhookConfig, check.Fail, "MutatingWebhookConfiguration "+webhookRelease, "clientConfig.caBundle: empty", injectCA)
	wantCheck(t, rep, check.WebhookTLS, check.Fail, "caBundle empty")
	wantCheck(t, rep, check.WebhookInjects, check.Fail, "was refused")
	// What is not broken is still reported as fine.
	wantCheck(t, rep, check.WebhookPods, check.OK)
	wantCheck(t, rep, check.CSIDriver, check.OK)
}

// waitInjecting waits until an opted-in dry-run pod comes back injected.
func waitInjecting(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := dryRunCreate(ctx, optedIn(suite.demoNamespace, "check-restored"))
		return err == nil && hasCSIVolume(p), nil
	})
	if err != nil {
		t.Errorf("admission did not recover: %v", err)
	}
}

// With the webhook scaled to 0, check names the Deployment's replicas and
// the refused canary.
func TestCheckFailsWhenWebhookScaledToZero(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	wns := suite.webhookNamespace
	dumpOnFailure(t, wns)
	deps := kube.AppsV1().Deployments(wns)
	d, err := deps.Get(ctx, webhookRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	if replicas == 0 {
		t.Fatalf("deployment %s/%s is already at 0 replicas", wns, webhookRelease)
	}
	scale := func(n int32) error {
		patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
		_, err := deps.Patch(context.Background(), webhookRelease, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	t.Cleanup(func() {
		if err := scale(replicas); err != nil {
			t.Errorf("scale webhook back to %d: %v", replicas, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		waitRollout(ctx, t, wns, webhookRelease)
		waitInjecting(t)
	})
	if err := scale(0); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := kube.CoreV1().Pods(wns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=mtls-webhook,app.kubernetes.io/component=webhook"})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Fatalf("webhook pods still present: %v", err)
	}

	code, rep := runCheck(ctx, t, 10*time.Second)
	if code != 1 || rep.OK {
		t.Errorf("check: exit %d, ok %v with the webhook scaled to 0; want exit 1", code, rep.OK)
	}
	wantCheck(t, rep, check.WebhookPods, check.Fail, "Deployment "+wns+"/"+webhookRelease+" is scaled to 0 replicas", "kubectl -n "+wns+" scale")
	wantCheck(t, rep, check.WebhookInjects, check.Fail, "was refused", "inject.mtls.demo")
	wantCheck(t, rep, check.WebhookConfig, check.OK)
}

var issuersGVR = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "issuers"}

// An Issuer whose CA Secret does not exist is not Ready: check names it,
// with cert-manager's reason.
func TestCheckFailsOnIssuerNotReady(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	ns := "mtls-check-issuer"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, ns) })
	iss := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
		"metadata": map[string]any{"name": "missing-ca", "namespace": ns},
		"spec":     map[string]any{"ca": map[string]any{"secretName": "no-such-secret"}},
	}}
	if _, err := dyn.Resource(issuersGVR).Namespace(ns).Create(ctx, iss, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// cert-manager sets Ready=False once it has looked for the Secret.
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := dyn.Resource(issuersGVR).Namespace(ns).Get(ctx, "missing-ca", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Ready" && m["status"] == "False" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("Issuer %s/missing-ca never became Ready=False: %v", ns, err)
	}

	code, rep := runCheck(ctx, t, 10*time.Second, "--required-issuers", "Issuer/"+ns+"/missing-ca")
	if code != 1 || rep.OK {
		t.Errorf("check: exit %d, ok %v with a required Issuer not Ready; want exit 1", code, rep.OK)
	}
	wantCheck(t, rep, check.Issuers, check.Fail, "Issuer "+ns+"/missing-ca (--required-issuers) is not Ready", "Ready=False")
	wantCheck(t, rep, check.WebhookInjects, check.OK)
}

// deleteNamespace deletes a namespace and waits until it is gone, so that
// what it held does not show in the next test's check.
func deleteNamespace(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", ns, err)
		return
	}
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("namespace %s not gone: %v", ns, err)
	}
}

// Without the CSIDriver object the kubelet refuses inline CSI volumes:
// check names it. The object is put back exactly, Helm's labels and
// annotations included, so the csi-driver release still owns it.
func TestCheckFailsWithoutCSIDriver(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	drivers := kube.StorageV1().CSIDrivers()
	orig, err := drivers.Get(ctx, "csi.cert-manager.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	restore := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: orig.Name, Labels: orig.Labels, Annotations: orig.Annotations},
		Spec:       orig.Spec,
	}
	if err := drivers.Delete(ctx, orig.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := drivers.Create(context.Background(), restore, metav1.CreateOptions{}); err != nil {
			t.Errorf("re-creating CSIDriver %s: %v", restore.Name, err)
			return
		}
		got, err := drivers.Get(context.Background(), restore.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("CSIDriver %s after re-creating it: %v", restore.Name, err)
			return
		}
		if got.Annotations["meta.helm.sh/release-name"] != orig.Annotations["meta.helm.sh/release-name"] ||
			got.Labels["app.kubernetes.io/managed-by"] != orig.Labels["app.kubernetes.io/managed-by"] {
			t.Errorf("CSIDriver %s re-created without Helm's ownership: labels %v, annotations %v", got.Name, got.Labels, got.Annotations)
		}
	})
	err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := drivers.Get(ctx, orig.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("CSIDriver %s not gone: %v", orig.Name, err)
	}

	code, rep := runCheck(ctx, t, 10*time.Second)
	if code != 1 || rep.OK {
		t.Errorf("check: exit %d, ok %v without the CSIDriver; want exit 1", code, rep.OK)
	}
	wantCheck(t, rep, check.CSIDriver, check.Fail, "CSIDriver csi.cert-manager.io not found")
	wantCheck(t, rep, check.WebhookInjects, check.OK)
}

// An opted-in pod in a namespace excluded from injection runs without the
// volume: check lists it as a warning and still passes.
func TestCheckListsBypassedPods(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	ns := "mtls-check-bypassed"
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{"mtls.demo/injection": "disabled"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, ns) })
	pod := optedIn(ns, "bypassed")
	// Never scheduled: it only has to exist, opted in and without volume.
	pod.Spec.NodeSelector = map[string]string{"mtls.demo/check-e2e": "no-such-node"}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, rep := runCheck(ctx, t, time.Minute)
	if code != 0 || !rep.OK {
		t.Errorf("check: exit %d, ok %v; a bypassed pod is a warning, not a failure", code, rep.OK)
	}
	wantCheck(t, rep, check.BypassedPods, check.Warn, ns+"/bypassed", "without a csi.cert-manager.io volume")
}

// `helm test` runs `mtls-webhook check` from the webhook's own image, and
// passes on the suite's healthy install. (Not `helm test --logs`: helm reads
// the logs of every test hook as if it were a pod, and the test's RBAC and
// canary namespace are hooks too; the pod is kept, so its logs are read
// here, as `kubectl logs` would.)
func TestCheckRunsInHelmTest(t *testing.T) {
	ctx := ctxFor(t, 8*time.Minute)
	wns := suite.webhookNamespace
	dumpOnFailure(t, wns)
	cmd := exec.CommandContext(ctx, suite.helm, "test", webhookRelease, "--namespace", wns, "--timeout", "5m")
	cmd.Dir = suite.repoRoot
	out, err := cmd.CombinedOutput()
	t.Logf("helm test:\n%s", out)
	if err != nil {
		t.Fatalf("helm test %s: %v", webhookRelease, err)
	}
	if !strings.Contains(string(out), "TEST SUITE:     "+webhookRelease+"-test") || strings.Contains(string(out), "Phase:          Failed") {
		t.Errorf("helm test did not report %s-test as run and passed", webhookRelease)
	}
	// The test pod is kept after success: it ran the binary's check.
	pod, err := kube.CoreV1().Pods(wns).Get(ctx, webhookRelease+"-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// It carries the chart's name label, which other tests select the
	// webhook's pods by: leave the namespace as the install left it.
	t.Cleanup(func() { deletePodAndWait(t, wns, pod.Name) })
	ctr := pod.Spec.Containers[0]
	if !slices.Equal(ctr.Command, []string{"/mtls-webhook"}) || len(ctr.Args) == 0 || ctr.Args[0] != "check" {
		t.Errorf("test pod runs %q %q, want /mtls-webhook check", ctr.Command, ctr.Args)
	}
	if want := fmt.Sprintf("%s/mtls-webhook:%s", suite.registry, suite.imageTag); ctr.Image != want {
		t.Errorf("test pod image %s, want the webhook's own %s", ctr.Image, want)
	}
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Errorf("test pod phase %s", pod.Status.Phase)
	}
	logs := podLogs(ctx, t, wns, pod.Name)
	t.Logf("test pod logs:\n%s", logs)
	for _, want := range []string{"CHECK", "STATUS", "MESSAGE", "PASS: mtls-webhook " + wns + "/" + webhookRelease} {
		if !strings.Contains(logs, want) {
			t.Errorf("test pod's logs lack %q", want)
		}
	}
	// Every check ran and passed, in the cluster (where the served
	// certificate is dialled through the Service's name).
	for _, name := range []string{check.CertManagerAPI, check.CSIDriver, check.WebhookConfig, check.WebhookTLS,
		check.WebhookPods, check.WebhookInjects, check.Issuers} {
		if !regexp.MustCompile(`(?m)^` + name + ` +ok +`).MatchString(logs) {
			t.Errorf("test pod's table has no ok row for %s", name)
		}
	}
	if !strings.Contains(logs, "served at "+webhookRelease+"."+wns+".svc:443") {
		t.Errorf("in the cluster, check did not verify the certificate served at the Service's name")
	}
}

// deletePodAndWait deletes a pod and waits until it is gone.
func deletePodAndWait(t *testing.T, namespace, name string) {
	t.Helper()
	deletePod(namespace, name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("pod %s/%s not gone: %v", namespace, name, err)
	}
}
