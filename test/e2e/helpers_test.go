//go:build e2e

// Package e2e runs the seed demo's manual steps against a real cluster (kind,
// cert-manager, csi-driver, both charts installed): see docs/kind-e2e.md.
// hack/kind-e2e.sh prepares the cluster and runs it with KUBECONFIG set.
//
// The suite talks to the API with client-go only (no kubectl, no exec or
// port-forward, which would need SPDY dependencies): pods' metrics are read
// through the API server's pod proxy, and checks that need a shell run as
// short-lived pods whose logs and exit codes are read back.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mtls-demo/mtls-webhook/internal/demo"
	"github.com/mtls-demo/mtls-webhook/internal/logtail"
)

// toolboxImage is the suite's own tool image (test/toolbox, built by `make
// images` like the apps): `fetch` replaces curl and `capture` tcpdump and
// tshark, so that no third-party image is pulled, on kind or on the local
// node.
func toolboxImage() string {
	return fmt.Sprintf("%s/e2e-toolbox:%s", suite.registry, suite.imageTag)
}

// env holds the settings hack/kind-e2e.sh passes in.
type env struct {
	webhookNamespace string
	demoNamespace    string
	helm             string
	registry         string
	imageTag         string
	repoRoot         string
}

var (
	cfg   *rest.Config
	kube  kubernetes.Interface
	dyn   dynamic.Interface
	suite env
)

var certificateRequests = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificaterequests"}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	suite = env{
		webhookNamespace: getenv("E2E_WEBHOOK_NAMESPACE", "mtls-system"),
		demoNamespace:    getenv("E2E_DEMO_NAMESPACE", "demo"),
		helm:             getenv("E2E_HELM", filepath.Join(root, "bin", "helm")),
		registry:         getenv("E2E_REGISTRY", "ghcr.io/mtls-demo"),
		imageTag:         getenv("E2E_IMAGE_TAG", "0.1.0"),
		repoRoot:         root,
	}
	// KUBECONFIG is required: running against whatever cluster the default
	// kubeconfig points at would be a surprise, since the suite scales the
	// webhook down and deletes its serving secret.
	kc := os.Getenv("KUBECONFIG")
	if kc == "" {
		fmt.Fprintln(os.Stderr, "e2e: KUBECONFIG is not set; run through `make kind-e2e` (hack/kind-e2e.sh)")
		os.Exit(1)
	}
	var err error
	if cfg, err = clientcmd.BuildConfigFromFlags("", kc); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	kube = kubernetes.NewForConfigOrDie(cfg)
	dyn = dynamic.NewForConfigOrDie(cfg)
	// controller-runtime's client (used for cert-manager's types) logs
	// nothing the suite reads; without a logger it prints a stack trace.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

func image(app string) string {
	return fmt.Sprintf("%s/demo-%s:%s", suite.registry, app, suite.imageTag)
}

// ctxFor bounds a test: every wait below is polled, never slept blindly.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dumpOnFailure registers a cleanup that prints the namespace's events and
// its pods' logs when the test failed, so a CI failure is debuggable from
// the test output alone.
func dumpOnFailure(t *testing.T, namespace string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if evs, err := kube.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{}); err == nil {
			for _, e := range evs.Items {
				t.Logf("event %s %s/%s: %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
		pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		for _, p := range pods.Items {
			t.Logf("pod %s: phase %s", p.Name, p.Status.Phase)
			for _, c := range p.Spec.Containers {
				raw, err := kube.CoreV1().Pods(namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
				if err == nil {
					t.Logf("logs %s/%s:\n%s", p.Name, c.Name, logtail.Lines(string(raw), 60))
				}
			}
		}
	})
}

// helmCmd runs the pinned helm against the suite's cluster.
func helmCmd(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(suite.helm, args...)
	cmd.Dir = suite.repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// installDemo installs a release of the mtls-demo chart into its own
// namespace (created by helm, removed at the end of the test) with the
// suite's images, plus extra --set values, and waits until it is Ready.
func installDemo(t *testing.T, namespace string, sets ...string) {
	t.Helper()
	args := []string{"upgrade", "--install", "mtls-demo", "./helm/mtls-demo",
		"--namespace", namespace, "--create-namespace", "--wait", "--timeout", "5m",
		"--set", "frontend.image.repository=" + suite.registry + "/demo-frontend",
		"--set", "frontend.image.tag=" + suite.imageTag,
		"--set", "backend.image.repository=" + suite.registry + "/demo-backend",
		"--set", "backend.image.tag=" + suite.imageTag,
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	dumpOnFailure(t, namespace)
	helmCmd(t, args...)
	t.Cleanup(func() {
		if os.Getenv("KEEP") == "1" {
			return
		}
		cmd := exec.Command(suite.helm, "uninstall", "mtls-demo", "--namespace", namespace, "--wait", "--ignore-not-found")
		_ = cmd.Run()
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), namespace, metav1.DeleteOptions{})
	})
}

// readyPod returns the single Ready pod of a demo component, waiting for it.
func readyPod(ctx context.Context, t *testing.T, namespace, component string) *corev1.Pod {
	t.Helper()
	return readySelected(ctx, t, namespace, "app.kubernetes.io/component="+component+",app.kubernetes.io/instance=mtls-demo")
}

// readySelected waits until exactly one pod matches the label selector and
// it is Ready (during a rollout the old pod is still Ready), and returns it.
func readySelected(ctx context.Context, t *testing.T, namespace, selector string) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		var ready []*corev1.Pod
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp == nil && isReady(p) {
				ready = append(ready, p)
			}
		}
		if len(ready) == 1 && len(pods.Items) == 1 {
			found = ready[0]
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no single Ready pod %s in %s: %v", selector, namespace, err)
	}
	return found
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// metrics reads a demo app's /metrics from its plain-HTTP ops port through
// the API server's pod proxy (the main port may demand a client
// certificate), with the demo's parser (Prometheus' own text parser).
func metrics(ctx context.Context, t *testing.T, pod *corev1.Pod) demo.Metrics {
	t.Helper()
	raw, err := kube.CoreV1().Pods(pod.Namespace).ProxyGet("http", pod.Name, "8081", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET %s/%s:8081/metrics: %v", pod.Namespace, pod.Name, err)
	}
	m, err := demo.ParseMetrics(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s/%s /metrics: %v", pod.Namespace, pod.Name, err)
	}
	return m
}

// servingSerial is the serial of the certificate the app has in service.
func servingSerial(ctx context.Context, t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	s := metrics(ctx, t, pod).Serial
	if s == "" {
		t.Fatalf("%s: no mtls_cert_info series in /metrics", pod.Name)
	}
	return s
}

// podResult is what a finished one-shot pod left behind.
type podResult struct {
	exitCode int32
	logs     string
}

// runPod creates a one-shot pod (restartPolicy Never), waits until its first
// container terminated and returns its exit code and logs. The pod is
// deleted afterwards.
func runPod(ctx context.Context, t *testing.T, pod *corev1.Pod) podResult {
	t.Helper()
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	created, err := kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	t.Cleanup(func() { deletePod(created.Namespace, created.Name) })
	return waitTerminated(ctx, t, created)
}

func waitTerminated(ctx context.Context, t *testing.T, pod *corev1.Pod) podResult {
	t.Helper()
	var res podResult
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == p.Spec.Containers[0].Name && cs.State.Terminated != nil {
				res.exitCode = cs.State.Terminated.ExitCode
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s did not finish: %v", pod.Namespace, pod.Name, err)
	}
	res.logs = podLogs(ctx, t, pod.Namespace, pod.Name)
	return res
}

func podLogs(ctx context.Context, t *testing.T, namespace, name string) string {
	t.Helper()
	raw, err := kube.CoreV1().Pods(namespace).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", namespace, name, err)
	}
	return string(raw)
}

func deletePod(namespace, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := kube.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "e2e: delete pod %s/%s: %v\n", namespace, name, err)
	}
}

// restrictedSecurity is the Pod Security "restricted" container context the
// demo apps use (uid 65532 can read the CSI driver's files like they do).
func restrictedSecurity() (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	return &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](65532),
			RunAsGroup:     ptr.To[int64](65532),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}, &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
}

// clientPod is the demo load client (the seed's test_client.py), opted in to
// injection so that it holds a certificate from the namespace's demo CA.
func clientPod(namespace, name, url string, count int, useMTLS bool) *corev1.Pod {
	psc, csc := restrictedSecurity()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Annotations: map[string]string{
				"mtls.demo/enable":   "true",
				"mtls.demo/issuer":   "demo-ca",
				"mtls.demo/use-mtls": fmt.Sprint(useMTLS),
			},
		},
		Spec: corev1.PodSpec{
			SecurityContext: psc,
			Containers: []corev1.Container{{
				Name: "client", Image: image("client"), ImagePullPolicy: corev1.PullIfNotPresent,
				// A NetworkPolicy agent admits a new pod's address a moment
				// after it starts: wait for the frontend before counting.
				Args:            []string{"-url", url, "-count", fmt.Sprint(count), "-interval", "200ms", "-wait-for-frontend", "30s"},
				SecurityContext: csc,
			}},
		},
	}
}

// optInAnnotations opt a pod in with the namespace's demo CA.
func optInAnnotations() map[string]string {
	return map[string]string{"mtls.demo/enable": "true", "mtls.demo/issuer": "demo-ca"}
}

// withPodCert adds the injected certificate files to a toolbox command
// ("fetch", flags..., URL): right after the subcommand, since flags after
// the URL would not be read.
func withPodCert(sub string, rest ...string) []string {
	return append([]string{sub, "--cacert", "/var/run/mtls/ca.crt", "--cert", "/var/run/mtls/tls.crt", "--key", "/var/run/mtls/tls.key"}, rest...)
}

// frontendSelector is the frontend pod's labels that the chart's
// NetworkPolicy selects on (so a pod with them may reach the backend), and
// none that would make frontend-svc send it traffic: Services select on the
// same labels, so the pod is kept out of the endpoints by a readiness probe
// that never passes (see toolboxPod).
func frontendSelector(frontend *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"} {
		if v, ok := frontend.Labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// toolboxPod is a one-shot pod of the suite's toolbox image under the
// restricted security context, with optional annotations (opt in) and
// labels. With labels it gets a readiness probe that never passes, so no
// Service routes to it.
func toolboxPod(namespace, name string, annotations, labels map[string]string, args ...string) *corev1.Pod {
	psc, csc := restrictedSecurity()
	c := corev1.Container{Name: "toolbox", Image: toolboxImage(), ImagePullPolicy: corev1.PullIfNotPresent, Args: args, SecurityContext: csc}
	if len(labels) > 0 {
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1)}}, PeriodSeconds: 60}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: annotations, Labels: labels},
		Spec:       corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{c}},
	}
}
