// Package integration runs mtls-webhook behind a real control plane: etcd,
// kube-apiserver (through envtest) and kube-controller-manager, built by
// `make k8s-bins`. Unit tests prove the mutation; these tests prove that the
// API server calls the webhook, accepts what it returns, stores valid pods,
// and that the failure modes (webhook down, slow, rotating its certificate)
// behave as a production cluster needs.
//
// One control plane serves the whole package (TestMain), so the suite pays
// the start-up cost once. Tests isolate themselves by namespace: every test
// registers its own copy of the chart's MutatingWebhookConfiguration, narrowed
// to namespaces carrying its own mtls-it/case label, and removes it when done.
package integration

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtls-demo/mtls-webhook/internal/cli"
	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// suite is the shared control plane and the in-process webhook.
var suite *harness

type harness struct {
	env    *envtest.Environment
	cfg    *rest.Config // admin (system:masters)
	assets string       // directory of etcd, kube-apiserver, kube-controller-manager
	work   string       // temp dir: kubeconfigs, certificates, logs

	kcm *controlplane.Process

	// The webhook under test, started in-process through cli.Serve, the
	// very code path of `mtls-webhook serve`.
	webhook     *servingCert // CA and leaf in certDir
	webhookURL  string       // https://127.0.0.1:<port>/mutate-pods
	metricsURL  string
	healthURL   string
	stopWebhook context.CancelFunc
	webhookDone chan error
	webhookErr  error // why the webhook did not become ready

	// binary is cmd/webhook built for the tests that need a second
	// instance with other flags, or one they can kill: the manager
	// registers its metrics in controller-runtime's global registry, so
	// cli.Serve can run only once per process.
	binary    string
	binaryErr error
	binaryOK  chan struct{}

	logs []string // files whose tails are printed when a test failed

	stopOnce sync.Once
	stopErr  error
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) (code int) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(chart.RepoRoot(), "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			// Nothing is running yet, so exiting here leaks nothing.
			log.Fatalf("integration: %s not found in %s (%v): run `make k8s-bins`", b, assets, err)
		}
	}
	work, err := os.MkdirTemp("", "mtls-integration-")
	if err != nil {
		log.Fatal(err)
	}
	h := &harness{assets: assets, work: work, binaryOK: make(chan struct{})}
	teardown := func() {
		if err := h.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "integration: teardown:", err)
		}
		_ = os.RemoveAll(work)
	}
	defer func() {
		if code != 0 {
			h.dumpLogs()
		}
		teardown()
	}()
	// etcd and kube-apiserver are envtest's children and would outlive an
	// interrupted run: tear down on Ctrl-C / SIGTERM, and keep running
	// (to tear down) when whoever reads our output goes away.
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	started := make(chan struct{})
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "integration: %v: tearing down the control plane\n", s)
		// envtest cannot stop processes it is still starting: let the
		// start finish (or fail) first.
		select {
		case <-started:
		case <-time.After(2 * time.Minute):
		}
		teardown()
		os.Exit(1)
	}()

	// The webhook binary compiles while the control plane starts; the
	// packages are already in the build cache from compiling this test.
	go h.buildBinary()

	start := time.Now()
	err = h.start()
	close(started)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: starting the control plane:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "integration: control plane and controller manager up in %s\n", time.Since(start).Round(time.Millisecond))
	suite = h
	return m.Run()
}

func (h *harness) start() error {
	env, err := controlplane.Environment(h.assets, "")
	if err != nil {
		return err
	}
	h.env = env
	if h.cfg, err = h.env.Start(); err != nil {
		return fmt.Errorf("envtest: %w", err)
	}
	if err := h.startControllerManager(); err != nil {
		return err
	}
	// A webhook that does not come up is the product failing, not the
	// harness: every test that needs it fails with this error, the others
	// (chart settings, ...) still run.
	if h.webhookErr = h.startWebhook(); h.webhookErr != nil {
		fmt.Fprintln(os.Stderr, "integration: the webhook did not start:", h.webhookErr)
	}
	return nil
}

// startControllerManager runs kube-controller-manager (see
// controlplane.StartControllerManager), so Deployments turn into Pods as in a
// cluster without a scheduler or kubelets.
func (h *harness) startControllerManager() error {
	kubeconfig := filepath.Join(h.work, "kcm.kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(h.env, "kcm", kubeconfig); err != nil {
		return err
	}
	c, err := client.New(h.cfg, client.Options{})
	if err != nil {
		return err
	}
	logPath := filepath.Join(h.work, "kube-controller-manager.log")
	h.logs = append(h.logs, logPath)
	h.kcm, err = controlplane.StartControllerManager(filepath.Join(h.assets, "kube-controller-manager"), kubeconfig, logPath, c, 60*time.Second)
	return err
}

// startWebhook runs `mtls-webhook serve` in-process with the test's rest
// config and a serving certificate for 127.0.0.1 signed by a fresh CA.
func (h *harness) startWebhook() error {
	certDir := filepath.Join(h.work, "webhook-certs")
	ca, err := newCA("mtls-webhook-it-ca")
	if err != nil {
		return err
	}
	if h.webhook, err = writeServingCert(certDir, ca); err != nil {
		return err
	}
	ports, err := controlplane.FreePorts(3)
	if err != nil {
		return err
	}
	logPath := filepath.Join(h.work, "webhook.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	h.logs = append(h.logs, logPath)
	h.webhookURL = fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", ports[0])
	h.healthURL = fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])
	h.metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2])
	args := []string{
		"--host=127.0.0.1",
		fmt.Sprintf("--port=%d", ports[0]),
		"--cert-dir=" + certDir,
		fmt.Sprintf("--health-addr=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--metrics-addr=127.0.0.1:%d", ports[2]),
		"--issuer-check=warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stopWebhook = cancel
	h.webhookDone = make(chan error, 1)
	go func() {
		h.webhookDone <- cli.Serve(ctx, args, rest.CopyConfig(h.cfg), cli.IO{In: strings.NewReader(""), Out: logFile, Err: logFile})
		_ = logFile.Close()
	}()
	if err := controlplane.WaitReady(h.healthURL, h.webhookDone, 30*time.Second); err != nil {
		// Say whether the HTTPS endpoint the API server calls is there at
		// all; readiness alone only says "webhook failed".
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		if conn, dialErr := net.DialTimeout("tcp", addr, 2*time.Second); dialErr != nil {
			err = fmt.Errorf("%w\n--port endpoint %s: %w", err, addr, dialErr)
		} else {
			_ = conn.Close()
		}
		return err
	}
	return nil
}

// requireWebhook fails the test when the suite's webhook never became ready.
func requireWebhook(t testing.TB) {
	t.Helper()
	if suite.webhookErr != nil {
		t.Fatalf("mtls-webhook serve did not become ready, so the API server cannot call it: %v", suite.webhookErr)
	}
}

// buildBinary compiles cmd/webhook for the tests that run it as a process.
func (h *harness) buildBinary() {
	defer close(h.binaryOK)
	out := filepath.Join(h.work, "mtls-webhook")
	cmd := exec.Command("go", "build", "-o", out, "github.com/mtls-demo/mtls-webhook/cmd/webhook")
	cmd.Dir = chart.RepoRoot()
	if msg, err := cmd.CombinedOutput(); err != nil {
		h.binaryErr = fmt.Errorf("go build ./cmd/webhook: %w: %s", err, msg)
		return
	}
	h.binary = out
}

// stop tears everything down in reverse order; it is safe on a partially
// started harness and always kills kube-controller-manager.
func (h *harness) stop() error {
	h.stopOnce.Do(func() { h.stopErr = h.doStop() })
	return h.stopErr
}

func (h *harness) doStop() error {
	var errs []error
	if h.stopWebhook != nil {
		h.stopWebhook()
		select {
		case err := <-h.webhookDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("webhook: %w", err))
			}
		case <-time.After(30 * time.Second):
			errs = append(errs, errors.New("webhook did not stop within 30s"))
		}
	}
	if h.kcm != nil {
		h.kcm.Stop()
	}

	if h.env != nil {
		if err := controlplane.Stop(h.env); err != nil {
			errs = append(errs, fmt.Errorf("envtest: %w", err))
		}
	}
	// Wait for the binary build so that RemoveAll does not race with it.
	<-h.binaryOK
	return errors.Join(errs...)
}

func (h *harness) dumpLogs() {
	for _, p := range h.logs {
		fmt.Fprintf(os.Stderr, "\n==== last lines of %s ====\n%s\n", filepath.Base(p), controlplane.Tail(p, 60))
	}
}
