// Package demo runs the whole mtls-webhook flow on one machine without
// Docker: etcd, kube-apiserver and kube-controller-manager, cert-manager's
// controllers (in-process), the real cert-manager csi-driver binary, the
// webhook (in-process through cli.Serve) and a node agent that plays the
// kubelet. `make demo` (cmd/demo) and the end-to-end tests (test/demoe2e)
// both use it.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mtls-demo/mtls-webhook/demo-apps/pki"
	"github.com/mtls-demo/mtls-webhook/internal/cli"
	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/demo/certmanager"
	"github.com/mtls-demo/mtls-webhook/pkg/demo/nodeagent"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// NodeName is the one Node of the demo cluster.
const NodeName = "demo-node"

// EnvOptions configure Start.
type EnvOptions struct {
	// RepoRoot is the repository (default: found from this source file).
	RepoRoot string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// cert-manager-csi-driver and helm (default RepoRoot/bin).
	BinDir string
	// StateDir is the agent's state directory (default /tmp/mtls-demo).
	StateDir string
	// IssuerCheck is the webhook's --issuer-check (default warn).
	IssuerCheck string
	// Progress receives one line per start-up step (may be nil).
	Progress io.Writer
}

// Env is a running demo cluster.
type Env struct {
	Opts      EnvOptions
	Config    *rest.Config
	Client    client.Client
	Clientset *kubernetes.Clientset
	Agent     *nodeagent.Agent
	// DataRoot is the csi-driver's data root (absolute).
	DataRoot string
	// LogDir holds the components' logs.
	LogDir string
	// WebhookCA is the CA of the webhook's serving certificate.
	WebhookCA []byte

	env     *envtest.Environment
	cancel  context.CancelFunc
	stops   []func()
	started time.Time
}

// RepoRoot finds the repository from this source file.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func (o *EnvOptions) defaults() {
	if o.RepoRoot == "" {
		o.RepoRoot = RepoRoot()
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.RepoRoot, "bin")
	}
	if o.StateDir == "" {
		o.StateDir = "/tmp/mtls-demo"
	}
	if o.IssuerCheck == "" {
		o.IssuerCheck = "warn"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Preflight checks what Start needs before starting anything.
func Preflight(o EnvOptions) error {
	o.defaults()
	if os.Geteuid() != 0 {
		return errors.New("make demo needs root: the node agent mounts the CSI driver's volumes and gives every pod a private mount namespace (try: sudo make demo)")
	}
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "cert-manager-csi-driver", "helm", "frontend", "backend", "client"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing in %s: %s (run `make demo`, which builds them, or `make k8s-bins csi-driver-bin build-demo-apps bin/helm`)", o.BinDir, strings.Join(missing, ", "))
	}
	return nil
}

// BuildApps builds the demo apps (backend, frontend, client) into binDir.
func BuildApps(repoRoot, binDir string) error {
	cmd := exec.Command("go", "build", "-o", binDir+"/", "./demo-apps/backend", "./demo-apps/frontend", "./demo-apps/client")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./demo-apps/...: %w: %s", err, out)
	}
	return nil
}

func (e *Env) step(format string, args ...any) {
	fmt.Fprintf(e.Opts.Progress, "[%5.1fs] %s\n", time.Since(e.started).Seconds(), fmt.Sprintf(format, args...))
}

// Start brings the whole machinery up. Stop tears it down (also after an
// error from Start, which stops what it started itself).
func Start(ctx context.Context, o EnvOptions) (_ *Env, err error) {
	o.defaults()
	if err := Preflight(o); err != nil {
		return nil, err
	}
	e := &Env{Opts: o, started: time.Now()}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel // Stop cancels it before running e.stops

	if _, err := nodeagent.UnmountAll(o.StateDir); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(o.StateDir)
	e.LogDir = filepath.Join(o.StateDir, "logs")
	if err := os.MkdirAll(e.LogDir, 0o755); err != nil {
		return nil, err
	}
	quietLogs(e.LogDir)

	// 1. etcd + kube-apiserver.
	if e.env, err = controlplane.Environment(o.BinDir, o.RepoRoot); err != nil {
		return nil, err
	}
	if e.Config, err = e.env.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	e.Config.QPS, e.Config.Burst = 100, 200
	if e.Client, err = client.New(e.Config, client.Options{}); err != nil {
		return nil, err
	}
	if e.Clientset, err = kubernetes.NewForConfig(e.Config); err != nil {
		return nil, err
	}
	e.step("etcd and kube-apiserver up (%s), cert-manager CRDs installed", e.Config.Host)

	kubeconfig := filepath.Join(o.StateDir, "admin.kubeconfig")
	if err := e.writeKubeconfig("demo-admin", kubeconfig); err != nil {
		return nil, err
	}

	// 2. kube-controller-manager.
	if err := e.startKCM(kubeconfig); err != nil {
		return nil, err
	}
	e.step("kube-controller-manager up (deployment, replicaset, serviceaccount controllers)")

	// 3. cert-manager, in-process.
	for _, ns := range []string{certmanager.ClusterResourceNamespace, "mtls-system"} {
		if err := e.ensureNamespace(ctx, ns, nil); err != nil {
			return nil, err
		}
	}
	waitCM, err := certmanager.Run(runCtx, kubeconfig)
	if err != nil {
		return nil, err
	}
	e.stops = append(e.stops, waitCM)
	e.step("cert-manager controllers running in-process: %s", strings.Join(certmanager.Controllers, ", "))

	// 4. The csi-driver binary.
	if err := e.startCSIDriver(kubeconfig); err != nil {
		return nil, err
	}
	e.step("cert-manager csi-driver up (data root %s)", e.DataRoot)

	// 5. The webhook, in-process through cli.Serve, registered with the
	// chart's own MutatingWebhookConfiguration.
	if err := e.startWebhook(runCtx); err != nil {
		return nil, err
	}
	e.step("mtls-webhook serving and registered (issuer check: %s)", o.IssuerCheck)

	// 6. The node agent.
	agentLog, err := os.Create(filepath.Join(e.LogDir, "node-agent.log"))
	if err != nil {
		return nil, err
	}
	e.Agent, err = nodeagent.New(nodeagent.Config{
		Client:    e.Clientset,
		NodeName:  NodeName,
		StateDir:  filepath.Join(o.StateDir, "node"),
		CSISocket: filepath.Join(o.StateDir, "csi", "csi.sock"),
		Binaries: map[string]string{
			"demo-frontend": filepath.Join(o.BinDir, "frontend"),
			"demo-backend":  filepath.Join(o.BinDir, "backend"),
			"demo-client":   filepath.Join(o.BinDir, "client"),
		},
		Log: slog.New(slog.NewTextHandler(agentLog, nil)),
	})
	if err != nil {
		return nil, err
	}
	agentDone := make(chan struct{})
	go func() { _ = e.Agent.Run(runCtx); close(agentDone) }()
	e.stops = append(e.stops, func() { <-agentDone; _ = agentLog.Close() })
	e.step("node agent %s running (pods get 127.1.x.y, Services 127.100.x.y)", NodeName)
	return e, nil
}

// Stop tears everything down in reverse order and unmounts what is left.
func (e *Env) Stop() {
	if e.cancel != nil {
		e.cancel()
	}
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
	if e.env != nil {
		_ = e.env.Stop()
		e.env = nil
	}
	_, _ = nodeagent.UnmountAll(e.Opts.StateDir)
}

// quietLogs sends klog (cert-manager, client-go) and controller-runtime's
// logger to files instead of the terminal.
func quietLogs(dir string) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	if f, err := os.Create(filepath.Join(dir, "cert-manager.log")); err == nil {
		klog.SetOutput(f)
	}
	if f, err := os.Create(filepath.Join(dir, "controller-runtime.log")); err == nil {
		ctrl.SetLogger(zap.New(zap.WriteTo(f)))
	}
}

func (e *Env) writeKubeconfig(name, path string) error {
	return controlplane.WriteAdminKubeconfig(e.env, name, path)
}

func (e *Env) ensureNamespace(ctx context.Context, name string, labels map[string]string) error {
	err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// startProcess runs one of the binaries in BinDir, logging to LogDir, and
// stops it with the environment.
func (e *Env) startProcess(name string, args []string, dir string) (<-chan struct{}, error) {
	p, err := controlplane.Start(filepath.Join(e.Opts.BinDir, name), args, dir, filepath.Join(e.LogDir, name+".log"))
	if err != nil {
		return nil, err
	}
	e.stops = append(e.stops, p.Stop)
	return p.Done(), nil
}

func (e *Env) startKCM(kubeconfig string) error {
	p, err := controlplane.StartControllerManager(filepath.Join(e.Opts.BinDir, "kube-controller-manager"),
		kubeconfig, filepath.Join(e.LogDir, "kube-controller-manager.log"), e.Client, 60*time.Second)
	if err != nil {
		return err
	}
	e.stops = append(e.stops, p.Stop)
	return nil
}

func (e *Env) poll(timeout time.Duration, what string, exited <-chan struct{}, f wait.ConditionWithContextFunc) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if exited != nil {
			select {
			case <-exited:
				return false, fmt.Errorf("%s exited; see %s", what, e.LogDir)
			default:
			}
		}
		return f(ctx)
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w (logs in %s)", what, err, e.LogDir)
	}
	return nil
}

func (e *Env) startCSIDriver(kubeconfig string) error {
	csiDir := filepath.Join(e.Opts.StateDir, "csi")
	e.DataRoot = filepath.Join(csiDir, "data")
	if err := os.MkdirAll(e.DataRoot, 0o755); err != nil {
		return err
	}
	sock := filepath.Join(csiDir, "csi.sock")
	// csi-lib reads the data root through os.DirFS("/"): it must be given
	// relative to / with / as working directory.
	rel := strings.TrimPrefix(e.DataRoot, "/")
	done, err := e.startProcess("cert-manager-csi-driver", []string{
		"--endpoint=unix://" + sock,
		"--node-id=" + NodeName,
		"--kubeconfig=" + kubeconfig,
		"--data-root=" + rel,
		"--log-level=1",
	}, "/")
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func() { _, _ = nodeagent.UnmountAll(csiDir) })
	return e.poll(30*time.Second, "cert-manager-csi-driver socket", done, func(context.Context) (bool, error) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false, nil
		}
		_ = c.Close()
		return true, nil
	})
}

func (e *Env) startWebhook(ctx context.Context) error {
	certDir := filepath.Join(e.Opts.StateDir, "webhook-certs")
	caPEM, err := writeServingCert(certDir)
	if err != nil {
		return err
	}
	e.WebhookCA = caPEM
	ports, err := controlplane.FreePorts(3)
	if err != nil {
		return err
	}
	lf, err := os.Create(filepath.Join(e.LogDir, "webhook.log"))
	if err != nil {
		return err
	}
	args := []string{
		"--host=127.0.0.1",
		fmt.Sprintf("--port=%d", ports[0]),
		"--cert-dir=" + certDir,
		fmt.Sprintf("--health-addr=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--metrics-addr=127.0.0.1:%d", ports[2]),
		"--issuer-check=" + e.Opts.IssuerCheck,
	}
	done := make(chan struct{})
	go func() {
		// The very code path of `mtls-webhook serve`, with its flags.
		if err := cli.Serve(ctx, args, rest.CopyConfig(e.Config), cli.IO{In: strings.NewReader(""), Out: lf, Err: lf}); err != nil && ctx.Err() == nil {
			fmt.Fprintln(lf, "webhook exited:", err)
		}
		close(done)
	}()
	e.stops = append(e.stops, func() { <-done; _ = lf.Close() })
	if err := e.poll(60*time.Second, "the webhook's /readyz", done, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return err
	}
	objs, err := RenderChart(e.Opts.BinDir, e.Opts.RepoRoot, "mtls-webhook", "mtls", "mtls-system", nil)
	if err != nil {
		return err
	}
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	for _, o := range objs {
		if o.GetKind() == "MutatingWebhookConfiguration" {
			mwc = &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, mwc); err != nil {
				return err
			}
		}
	}
	if mwc == nil {
		return errors.New("the mtls-webhook chart rendered no MutatingWebhookConfiguration")
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", ports[0])
	mwc.Annotations = nil // no cainjector here: we set caBundle ourselves
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
	}
	if err := e.Client.Create(ctx, mwc); err != nil {
		return fmt.Errorf("registering the webhook: %w", err)
	}
	// The API server loads webhook configurations asynchronously: wait
	// until a dry-run pod comes back injected.
	if err := e.ensureNamespace(ctx, "mtls-probe", nil); err != nil {
		return err
	}
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "mtls-probe", Annotations: map[string]string{annotations.Enable: "true", annotations.Issuer: "probe"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "probe"}}},
	}
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandler = rest.NoWarnings{}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return e.poll(30*time.Second, "the API server to call the webhook", done, func(ctx context.Context) (bool, error) {
		got, err := cs.CoreV1().Pods("mtls-probe").Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && strings.HasPrefix(got.Annotations[annotations.Status], mutate.StatusPrefix), nil
	})
}

// writeServingCert writes a fresh CA-signed ECDSA certificate for
// 127.0.0.1 into dir (tls.crt, tls.key) and returns the CA in PEM.
func writeServingCert(dir string) ([]byte, error) {
	ca, err := pki.NewCA("mtls-demo webhook CA", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if _, err := ca.WriteServingPair(dir, "mtls-webhook"); err != nil {
		return nil, err
	}
	return ca.CertPEM, nil
}
