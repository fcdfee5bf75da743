package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// caseLabel scopes a test's webhook configurations to its own namespaces.
const caseLabel = "mtls-it/case"

// clients returns a clientset whose warnings are recorded, and a
// controller-runtime client that knows cert-manager's types. Client-side
// rate limiting is off: the tests measure the API server, not client-go.
func clients(t testing.TB) (*kubernetes.Clientset, *controlplane.Warnings, client.Client) {
	t.Helper()
	requireWebhook(t)
	rec := &controlplane.Warnings{}
	cfg := rest.CopyConfig(suite.cfg)
	cfg.QPS, cfg.Burst = 5000, 10000
	cfg.WarningHandler = rec
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := cmapi.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	quiet := rest.CopyConfig(cfg)
	quiet.WarningHandler = rest.NoWarnings{}
	c, err := client.New(quiet, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cs, rec, c
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates a namespace labelled for case name. Namespaces are not
// deleted: the control plane runs no namespace controller and dies with
// the package.
func namespace(t testing.TB, cs kubernetes.Interface, name string, extra map[string]string) string {
	t.Helper()
	labels := map[string]string{caseLabel: name}
	for k, v := range extra {
		labels[k] = v
	}
	ns, err := cs.CoreV1().Namespaces().Create(ctxFor(t, 10*time.Second), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "it-" + name + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// chartWebhookConfig renders the chart's MutatingWebhookConfiguration (with
// extra --set values) and points it at url with caBundle. Everything else —
// failurePolicy, sideEffects, reinvocationPolicy, timeoutSeconds, rules,
// matchConditions and the namespaceSelector's exclusions — is the chart's.
// The selector additionally requires caseLabel=name, so that the copy only
// sees its own test's namespaces.
func chartWebhookConfig(t testing.TB, name, url string, caBundle []byte, set ...string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	if len(set) == 0 {
		// Most tests use the chart's defaults: render those once per run.
		defaultMWC.once.Do(func() { defaultMWC.mwc = chart.RenderWebhookChart(t, chart.HelmBinary(t), chart.Options{}) })
		if defaultMWC.mwc == nil {
			t.Fatal("rendering the chart's default MutatingWebhookConfiguration failed earlier")
		}
		mwc = defaultMWC.mwc.DeepCopy()
	} else {
		mwc = chart.RenderWebhookChart(t, chart.HelmBinary(t), chart.Options{Set: set})
	}
	mwc.Name = "it-" + name
	// Nothing runs cainjector here; the test sets caBundle itself.
	mwc.Annotations = nil
	for i := range mwc.Webhooks {
		wh := &mwc.Webhooks[i]
		wh.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
		if wh.NamespaceSelector == nil {
			wh.NamespaceSelector = &metav1.LabelSelector{}
		}
		wh.NamespaceSelector.MatchExpressions = append(wh.NamespaceSelector.MatchExpressions,
			metav1.LabelSelectorRequirement{Key: caseLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{name}})
	}
	return mwc
}

var defaultMWC struct {
	once sync.Once
	mwc  *admissionregistrationv1.MutatingWebhookConfiguration
}

// install creates mwc and deletes it when the test ends.
func install(t testing.TB, cs kubernetes.Interface, mwc *admissionregistrationv1.MutatingWebhookConfiguration) {
	t.Helper()
	api := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(ctxFor(t, 10*time.Second), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating MutatingWebhookConfiguration %s: %v", mwc.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := api.Delete(ctx, mwc.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting MutatingWebhookConfiguration %s: %v", mwc.Name, err)
		}
	})
}

// installChartWebhook registers the chart's configuration for the suite's
// webhook and waits until the API server routes ns's pods through it: the
// API server loads webhook configurations asynchronously.
func installChartWebhook(t testing.TB, cs kubernetes.Interface, name, ns string, set ...string) {
	t.Helper()
	install(t, cs, chartWebhookConfig(t, name, suite.webhookURL, suite.webhook.ca.CertPEM, set...))
	waitInjecting(t, ns)
}

// waitInjecting polls dry-run creations (the webhook is sideEffects: None,
// so the API server calls it for dry runs too) until one comes back
// injected. The probes' warnings go to a client of their own, so they never
// show up in a test's recorded warnings.
func waitInjecting(t testing.TB, ns string) {
	t.Helper()
	cfg := rest.CopyConfig(suite.cfg)
	cfg.WarningHandler = rest.NoWarnings{}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	probe := pod("probe", map[string]string{annotations.Enable: "true", annotations.Issuer: "probe"})
	eventually(t, 30*time.Second, "the API server to call the webhook for "+ns, func(ctx context.Context) error {
		got, err := cs.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if !injected(got) {
			return fmt.Errorf("dry-run pod not injected yet")
		}
		return nil
	})
}

// eventually retries f until it succeeds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		callCtx, callCancel := context.WithTimeout(ctx, 10*time.Second)
		defer callCancel()
		last = f(callCtx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting %s for %s: %v (last: %v)", timeout, what, err, last)
	}
}

// pod is a one-container pod with the given annotations. The image is never
// pulled: there are no kubelets.
func pod(name string, ann map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Annotations: ann, Labels: map[string]string{"app": "it"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1",
		}}},
	}
	if strings.HasSuffix(name, "-") {
		p.GenerateName = name
	} else {
		p.Name = name
	}
	return p
}

// optIn returns the annotations of an opted-in pod signed by issuer, plus
// extra key/value pairs (keys without the mtls.demo/ prefix get it).
func optIn(issuer string, kv ...string) map[string]string {
	ann := map[string]string{annotations.Enable: "true", annotations.Issuer: issuer}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i]
		if !strings.Contains(k, "/") {
			k = annotations.Prefix + k
		}
		ann[k] = kv[i+1]
	}
	return ann
}

func injected(p *corev1.Pod) bool {
	return strings.HasPrefix(p.Annotations[annotations.Status], mutate.StatusPrefix)
}

// assertInjected checks what the API server stored for an injected pod:
// exactly one mtls-certs CSI volume, and in every container exactly one
// read-only mount at mountPath and exactly one of each env var.
func assertInjected(t testing.TB, p *corev1.Pod, issuer, mountPath string) {
	t.Helper()
	if !injected(p) {
		t.Errorf("pod %s: %s = %q, want %s<hash>", p.Name, annotations.Status, p.Annotations[annotations.Status], mutate.StatusPrefix)
	}
	var vols []corev1.Volume
	for _, v := range p.Spec.Volumes {
		if v.Name == mutate.VolumeName {
			vols = append(vols, v)
		}
	}
	if len(vols) != 1 {
		t.Fatalf("pod %s: %d volumes named %s, want 1: %+v", p.Name, len(vols), mutate.VolumeName, p.Spec.Volumes)
	}
	csi := vols[0].CSI
	switch {
	case csi == nil:
		t.Errorf("pod %s: volume %s is not a CSI volume: %+v", p.Name, mutate.VolumeName, vols[0])
	case csi.Driver != mutate.Driver || csi.ReadOnly == nil || !*csi.ReadOnly:
		t.Errorf("pod %s: CSI volume driver=%q readOnly=%v, want %q read-only", p.Name, csi.Driver, csi.ReadOnly, mutate.Driver)
	case csi.VolumeAttributes[mutate.AttrIssuerName] != issuer:
		t.Errorf("pod %s: issuer-name attribute %q, want %q", p.Name, csi.VolumeAttributes[mutate.AttrIssuerName], issuer)
	}
	want := map[string]string{
		mutate.EnvUseMTLS:  "true",
		mutate.EnvCertFile: mountPath + "/tls.crt",
		mutate.EnvKeyFile:  mountPath + "/tls.key",
		mutate.EnvCAFile:   mountPath + "/ca.crt",
	}
	for _, c := range p.Spec.Containers {
		var mounts []corev1.VolumeMount
		for _, m := range c.VolumeMounts {
			if m.Name == mutate.VolumeName {
				mounts = append(mounts, m)
			}
		}
		if len(mounts) != 1 || mounts[0].MountPath != mountPath || !mounts[0].ReadOnly {
			t.Errorf("pod %s container %s: mounts of %s = %+v, want one read-only at %s", p.Name, c.Name, mutate.VolumeName, mounts, mountPath)
		}
		count := map[string]int{}
		for _, e := range c.Env {
			count[e.Name]++
			if w, ok := want[e.Name]; ok && e.Value != w {
				t.Errorf("pod %s container %s: env %s=%q, want %q", p.Name, c.Name, e.Name, e.Value, w)
			}
		}
		for name := range want {
			if count[name] != 1 {
				t.Errorf("pod %s container %s: env %s appears %d times, want 1", p.Name, c.Name, name, count[name])
			}
		}
	}
}

// assertUntouched checks that a pod was stored without anything injected.
func assertUntouched(t testing.TB, p *corev1.Pod, sentAnnotations map[string]string) {
	t.Helper()
	if len(p.Spec.Volumes) != 0 {
		t.Errorf("pod %s/%s: volumes %+v, want none", p.Namespace, p.Name, p.Spec.Volumes)
	}
	for _, c := range p.Spec.Containers {
		if len(c.Env) != 0 || len(c.VolumeMounts) != 0 {
			t.Errorf("pod %s/%s container %s: env %+v mounts %+v, want none", p.Namespace, p.Name, c.Name, c.Env, c.VolumeMounts)
		}
	}
	if len(p.Annotations) != len(sentAnnotations) {
		t.Errorf("pod %s/%s: annotations %v, want exactly %v", p.Namespace, p.Name, p.Annotations, sentAnnotations)
	}
	for k, v := range sentAnnotations {
		if p.Annotations[k] != v {
			t.Errorf("pod %s/%s: annotation %s=%q, want %q", p.Namespace, p.Name, k, p.Annotations[k], v)
		}
	}
}

// createIssuer creates a cert-manager Issuer and, through the status
// subresource as cert-manager would, sets its Ready condition.
func createIssuer(t testing.TB, c client.Client, ns, name string, ready cmmeta.ConditionStatus) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	iss := &cmapi.Issuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
	}
	if err := c.Create(ctx, iss); err != nil {
		t.Fatalf("creating Issuer %s/%s: %v", ns, name, err)
	}
	now := metav1.Now()
	iss.Status.Conditions = []cmapi.IssuerCondition{{
		Type: cmapi.IssuerConditionReady, Status: ready, Reason: "IntegrationTest",
		Message: "set by the integration test", LastTransitionTime: &now,
	}}
	if err := c.Status().Update(ctx, iss); err != nil {
		t.Fatalf("setting Issuer %s/%s Ready=%s: %v", ns, name, ready, err)
	}
}

// admissions scrapes mtls_webhook_admissions_total of the pod endpoints
// (kind="Pod") from a metrics URL, by result label.
func admissions(t testing.TB, metricsURL string) map[string]float64 {
	t.Helper()
	return admissionsOf(t, metricsURL, "Pod")
}

// metricFamilies scrapes metricsURL with Prometheus' own text parser.
func metricFamilies(t testing.TB, metricsURL string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxFor(t, 10*time.Second), http.MethodGet, metricsURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", metricsURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", metricsURL, err)
	}
	return mfs
}

// labelValue is the value of one label of a sample.
func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// admissionsOf scrapes mtls_webhook_admissions_total for one kind label, by
// result label.
func admissionsOf(t testing.TB, metricsURL, kind string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range metricFamilies(t, metricsURL)["mtls_webhook_admissions_total"].GetMetric() {
		if labelValue(m, "kind") == kind {
			out[labelValue(m, "result")] = m.GetCounter().GetValue()
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s serves no mtls_webhook_admissions_total series for kind %s", metricsURL, kind)
	}
	return out
}

func total(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// webhookProcess is the built mtls-webhook binary running `serve`.
type webhookProcess struct {
	url, healthURL, metricsURL string
	certDir                    string
	addr                       string // host:port of the HTTPS endpoint
	cmd                        *exec.Cmd
	done                       chan error
	killOnce                   sync.Once
}

// startWebhookProcess runs the binary with its own serving certificate
// signed by ca and extra flags; it is killed when the test ends.
func startWebhookProcess(t testing.TB, name string, ca *testCA, extra ...string) (*webhookProcess, *servingCert) {
	t.Helper()
	select {
	case <-suite.binaryOK:
	case <-time.After(5 * time.Minute):
		t.Fatal("go build ./cmd/webhook did not finish in 5 minutes")
	}
	if suite.binaryErr != nil {
		t.Fatal(suite.binaryErr)
	}
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	leaf, err := writeServingCert(certDir, ca)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(suite.env, "webhook-"+name, kubeconfig); err != nil {
		t.Fatal(err)
	}
	ports, err := controlplane.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(suite.work, "webhook-"+name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	suite.logs = append(suite.logs, logPath)
	p := &webhookProcess{
		addr:       fmt.Sprintf("127.0.0.1:%d", ports[0]),
		url:        fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", ports[0]),
		healthURL:  fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2]),
		certDir:    certDir,
		done:       make(chan error, 1),
	}
	args := append([]string{"serve",
		"--kubeconfig=" + kubeconfig,
		"--host=127.0.0.1",
		fmt.Sprintf("--port=%d", ports[0]),
		"--cert-dir=" + certDir,
		fmt.Sprintf("--health-addr=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--metrics-addr=127.0.0.1:%d", ports[2]),
	}, extra...)
	p.cmd = exec.Command(suite.binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); _ = logFile.Close() }()
	t.Cleanup(p.kill)
	if err := controlplane.WaitReady(p.healthURL, p.done, 30*time.Second); err != nil {
		t.Fatalf("webhook %s: %v\n%s", name, err, controlplane.Tail(logPath, 20))
	}
	return p, leaf
}

// kill stops the process hard, like a crashed or evicted pod, and waits
// for it to be gone.
func (p *webhookProcess) kill() {
	p.killOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		select {
		case err := <-p.done:
			_ = err // "signal: killed" is the expected outcome
		case <-time.After(10 * time.Second):
		}
	})
}

// reviewHandler decodes an AdmissionReview, lets f answer it, and writes
// the response back; it is the test's own webhook.
func reviewHandler(f func(r *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, fmt.Sprintf("bad review: %v", err), http.StatusBadRequest)
			return
		}
		resp := f(r, review.Request)
		if resp == nil {
			return // the handler gave up (client gone)
		}
		resp.UID = review.Request.UID
		review.Response = resp
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&review)
	})
}

// tlsServer serves h over HTTPS on 127.0.0.1 with a leaf from ca.
func tlsServer(t testing.TB, ca *testCA, h http.Handler) *httptest.Server {
	t.Helper()
	leaf, err := ca.issue()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.tlsCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// errorContains fails unless err is non-nil and contains every want.
func errorContains(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("request succeeded, want an error containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err.Error(), w)
		}
	}
}
