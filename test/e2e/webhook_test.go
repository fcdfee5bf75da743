//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/mtls-demo/mtls-webhook/internal/logtail"
)

// Case 3, step 4 (Wireshark): capture the frontend -> backend hop on the
// node, as the seed did with `minikube ssh -- tcpdump`. With USE_MTLS=false
// the JSON body is on the wire; after toggling to USE_MTLS=true connections
// open with a TLS ClientHello (the seed's Wireshark "Decode As" TLS on port
// 8080) and the JSON is gone.
func TestUseMTLSTogglePacketCapture(t *testing.T) {
	// Its own namespace, and the capture keeps only connections to this
	// namespace's backend: it runs beside the other parallel tests.
	t.Parallel()
	ctx := ctxFor(t, 15*time.Minute)
	ns := "e2e-toggle"
	installDemo(t, ns, "useMTLS=false")
	plain := capture(ctx, t, ns, false)
	if !strings.Contains(plain, "JSON_BODIES=") || strings.Contains(plain, "JSON_BODIES=0\n") {
		t.Errorf("USE_MTLS=false: want the request JSON on the wire:\n%s", plain)
	}
	installDemo(t, ns, "useMTLS=true")
	secure := capture(ctx, t, ns, true)
	if !strings.Contains(secure, "JSON_BODIES=0\n") {
		t.Errorf("USE_MTLS=true: JSON visible on the wire:\n%s", secure)
	}
	if !strings.Contains(secure, "CLIENT_HELLOS=") || strings.Contains(secure, "CLIENT_HELLOS=0\n") {
		t.Errorf("USE_MTLS=true: want TLS ClientHellos on port 8080:\n%s", secure)
	}
}

// capture runs the toolbox's capture in a host-network pod on the backend's
// node for 30s while the demo client sends requests: real frames on the
// node's interfaces, summarized as packets, JSON bodies and ClientHellos.
// Only connections to this namespace's backend count (its pod address, or
// backend-svc's before kube-proxy rewrites it), so other tests' demos on
// the same node and port are not mistaken for this one.
func capture(ctx context.Context, t *testing.T, ns string, useMTLS bool) string {
	t.Helper()
	backend := readyPod(ctx, t, ns, "backend")
	svc, err := kube.CoreV1().Services(ns).Get(ctx, "backend-svc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	to := backend.Status.PodIP + "," + svc.Spec.ClusterIP
	name := fmt.Sprintf("capture-%t", useMTLS)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:      backend.Spec.NodeName,
			HostNetwork:   true,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "capture", Image: toolboxImage(), ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            []string{"capture", "--port", "8080", "--to", to, "--duration", "30s"},
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true), RunAsUser: ptr.To[int64](0)},
			}},
		},
	}
	created, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deletePod(ns, created.Name) })
	// Start the traffic only once the capture listens.
	err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		raw, err := kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
		return err == nil && strings.Contains(string(raw), "listening on"), nil
	})
	if err != nil {
		t.Fatalf("the capture did not start: %v", err)
	}
	scheme := "http"
	if useMTLS {
		scheme = "https"
	}
	res := runPod(ctx, t, clientPod(ns, fmt.Sprintf("client-%t", useMTLS), scheme+"://frontend-svc."+ns+".svc:8080", 10, useMTLS))
	if res.exitCode != 0 {
		t.Fatalf("client (USE_MTLS=%t) exited %d:\n%s", useMTLS, res.exitCode, res.logs)
	}
	out := waitTerminated(ctx, t, created).logs
	t.Logf("capture USE_MTLS=%t:\n%s", useMTLS, logtail.Lines(out, 5))
	if strings.Contains(out, "PACKETS=0\n") {
		t.Fatalf("capture saw no packets to the backend:\n%s", out)
	}
	return out
}

// optedIn is a pod the webhook must mutate; created with dry-run, so the
// API server runs admission (the webhook has sideEffects None) without
// storing anything.
func optedIn(ns, name string) *corev1.Pod {
	psc, csc := restrictedSecurity()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Annotations: map[string]string{"mtls.demo/enable": "true", "mtls.demo/issuer": "demo-ca"}},
		Spec: corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{{
			Name: "app", Image: toolboxImage(), SecurityContext: csc}}},
	}
}

func dryRunCreate(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	return kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
}

func hasCSIVolume(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.Name == "mtls-certs" && v.CSI != nil && v.CSI.Driver == "csi.cert-manager.io" {
			return true
		}
	}
	return false
}

// The webhook's own serving certificate is renewed (its Secret deleted, so
// cert-manager issues a new key pair) while pods keep being admitted: not
// one admission may fail, and the secret must really be re-issued.
//
// It runs beside the other parallel tests, whose pods are admitted while
// the certificate changes too.
func TestWebhookCertRenewalKeepsAdmitting(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 10*time.Minute)
	wns, ns := suite.webhookNamespace, suite.demoNamespace
	dumpOnFailure(t, wns)
	secrets := kube.CoreV1().Secrets(wns)
	old, err := secrets.Get(ctx, "mtls-webhook-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := secrets.Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Two minutes covers cert-manager re-issuing and the kubelet's secret
	// volume sync (about a minute) in the webhook pods. This checks that
	// admissions never fail and that the Secret is re-issued; that the
	// webhook then serves the new certificate (the old one stays valid
	// here) is checked where the served serial can be read, in
	// test/integration's TestServingCertificateRotation.
	deadline := time.Now().Add(2 * time.Minute)
	admitted, renewed := 0, false
	for i := 0; time.Now().Before(deadline); i++ {
		p, err := dryRunCreate(ctx, optedIn(ns, fmt.Sprintf("renewal-%d", i)))
		if err != nil {
			t.Fatalf("admission %d during renewal failed: %v", i, err)
		}
		if !hasCSIVolume(p) {
			t.Fatalf("admission %d during renewal: pod not injected", i)
		}
		admitted++
		if s, err := secrets.Get(ctx, old.Name, metav1.GetOptions{}); err == nil && s.UID != old.UID &&
			len(s.Data["tls.crt"]) > 0 && string(s.Data["tls.crt"]) != string(old.Data["tls.crt"]) {
			renewed = true
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !renewed {
		t.Errorf("secret %s/%s was not re-issued with a new certificate", wns, old.Name)
	}
	t.Logf("%d admissions, none failed, during the serving certificate renewal", admitted)
}

// With the webhook scaled to 0 (failurePolicy Fail) opted-in pods are
// refused, while every other pod is still admitted: the matchConditions
// keep the webhook out of their path.
func TestWebhookDownRefusesOptedInPods(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	wns, ns := suite.webhookNamespace, suite.demoNamespace
	dumpOnFailure(t, wns)
	deps := kube.AppsV1().Deployments(wns)
	d, err := deps.Get(ctx, "mtls-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := ptr.Deref(d.Spec.Replicas, 2)
	scale := func(n int32) {
		patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
		if _, err := deps.Patch(context.Background(), "mtls-webhook", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("scale webhook to %d: %v", n, err)
		}
	}
	// Scale back up even when the test fails, then prove admission works again.
	t.Cleanup(func() {
		scale(replicas)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		waitRollout(ctx, t, wns, "mtls-webhook")
		err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
			p, err := dryRunCreate(ctx, optedIn(ns, "after-restore"))
			return err == nil && hasCSIVolume(p), nil
		})
		if err != nil {
			t.Errorf("admission did not recover after scaling the webhook back to %d: %v", replicas, err)
		}
	})
	scale(0)
	err = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := kube.CoreV1().Pods(wns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=mtls-webhook,app.kubernetes.io/component=webhook"})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Fatalf("webhook pods still present: %v", err)
	}
	if _, err := dryRunCreate(ctx, optedIn(ns, "while-down")); err == nil {
		t.Error("opted-in pod admitted while the webhook is down")
	} else if !strings.Contains(err.Error(), "inject.mtls.demo") {
		t.Errorf("opted-in pod refused for another reason: %v", err)
	}
	plain := optedIn(ns, "not-opted-in")
	plain.Annotations = nil
	if _, err := dryRunCreate(ctx, plain); err != nil {
		t.Errorf("pod without mtls.demo/enable refused while the webhook is down: %v", err)
	}
	off := optedIn(ns, "opted-out")
	off.Annotations = map[string]string{"mtls.demo/enable": "false"}
	if _, err := dryRunCreate(ctx, off); err != nil {
		t.Errorf(`pod with mtls.demo/enable: "false" refused while the webhook is down: %v`, err)
	}
}
