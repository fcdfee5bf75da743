// Package stack brings up everything a user of mtls-webhook runs, on the
// local node: the cluster (internal/cluster), NetworkPolicy enforcement
// (internal/netpol), cert-manager and its csi-driver from their own charts
// (internal/addons), and helm/mtls-webhook installed as helm/README.md tells
// a user to. `make demo` and `make e2e-local` both start it here, so they
// run the same cluster the same way.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/addons"
	"github.com/mtls-demo/mtls-webhook/internal/cluster"
	"github.com/mtls-demo/mtls-webhook/internal/images"
	"github.com/mtls-demo/mtls-webhook/internal/logtail"
	"github.com/mtls-demo/mtls-webhook/internal/netpol"
)

// WebhookNamespace and WebhookRelease are where helm/README.md installs
// the webhook.
const (
	WebhookNamespace = "mtls-system"
	WebhookRelease   = "mtls-webhook"
)

// Options configure Up.
type Options struct {
	// RepoRoot is this repository (the charts are installed from it).
	RepoRoot string
	// BinDir holds every binary and bin/images (default <RepoRoot>/bin).
	BinDir string
	// StateDir is the cluster's state directory (default <BinDir>/cluster).
	StateDir string
	// Log receives progress lines and helm's output (nil: discarded).
	Log io.Writer
	// WebhookSet are extra --set values for helm/mtls-webhook.
	WebhookSet []string
}

// Timings are the stages of Up, each from Up's call.
type Timings struct {
	Cluster     cluster.Timings
	NetPol      time.Duration
	CertManager time.Duration
	CSIDriver   time.Duration
	Webhook     time.Duration
}

// Stack is the running cluster with its add-ons and the webhook.
type Stack struct {
	*cluster.Cluster
	Images   *images.Index
	Firewall *netpol.Firewall
	opts     Options
	timings  Timings
	cancel   context.CancelFunc
}

// Memory is the resident memory of everything the stack runs, by
// component: the cluster's (see cluster.Cluster.Memory) and kube-router's
// firewall, which runs beside it.
func (s *Stack) Memory() map[string]uint64 {
	m := s.Cluster.Memory()
	if s.Firewall != nil {
		m["kube-router"] = cluster.RSS(s.Firewall.PID())
	}
	return m
}

// Up starts the cluster and installs everything on it. On failure it
// stops what it started, so the host is restored on every path.
func Up(ctx context.Context, o Options) (s *Stack, err error) {
	if o.RepoRoot == "" {
		return nil, errors.New("stack: RepoRoot is required")
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.RepoRoot, "bin")
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(o.BinDir, "cluster")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	idx, err := images.Load(images.DefaultDir(o.RepoRoot))
	if err != nil {
		return nil, fmt.Errorf("%w (images are built by `make images`)", err)
	}
	// kube-router's record lives beside the cluster's state (which Start
	// empties): after a killed run its rules are removed before anything
	// starts again.
	netpolDir := o.StateDir + "-netpol"
	if err := netpol.Cleanup(netpolDir); err != nil {
		return nil, fmt.Errorf("cleaning up after an earlier NetworkPolicy run: %w", err)
	}
	t0 := time.Now()
	// Cancelling ctx (Ctrl-C) aborts the start; once Up has returned, the
	// caller ends the run with Down, so that `make demo` can still print
	// its summary and check the rogue clients after a Ctrl-C.
	clusterCtx, cancelCluster := context.WithCancel(context.WithoutCancel(ctx))
	started := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cancelCluster()
		case <-started:
		}
	}()
	c, err := cluster.Start(clusterCtx, cluster.Options{BinDir: o.BinDir, StateDir: o.StateDir, Images: idx.Tarballs(), Log: o.Log})
	if err != nil {
		cancelCluster()
		return nil, err
	}
	s = &Stack{Cluster: c, Images: idx, opts: o, cancel: cancelCluster}
	defer func() {
		if err != nil {
			if stopErr := s.Down(); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("stopping after the failure: %w", stopErr))
			}
			s = nil
		}
	}()
	s.timings.Cluster = c.Timings()

	s.step("NetworkPolicy: kube-router's firewall")
	s.Firewall, err = netpol.Start(ctx, netpol.Options{
		Binary:      filepath.Join(o.BinDir, "kube-router"),
		Kubeconfig:  c.Kubeconfig(),
		NodeName:    c.NodeName(),
		StateDir:    netpolDir,
		PodCIDR:     cluster.PodCIDR,
		ServiceCIDR: cluster.ServiceCIDR,
	})
	if err != nil {
		return s, fmt.Errorf("NetworkPolicy enforcement: %w", err)
	}
	s.timings.NetPol = time.Since(t0)

	ao := addons.Options{Images: idx, KubeletRootDir: c.KubeletRootDir(), Output: o.Log, ModuleRoot: o.RepoRoot}
	s.step("cert-manager: its own chart, images built here")
	if _, err = addons.InstallCertManager(ctx, c.Kubeconfig(), o.BinDir, ao); err != nil {
		return s, err
	}
	s.timings.CertManager = time.Since(t0)
	s.step("cert-manager csi-driver: its own chart")
	if _, err = addons.InstallCSIDriver(ctx, c.Kubeconfig(), o.BinDir, ao); err != nil {
		return s, err
	}
	s.timings.CSIDriver = time.Since(t0)

	s.step("mtls-webhook: helm upgrade --install %s ./helm/mtls-webhook --namespace %s --create-namespace --wait", WebhookRelease, WebhookNamespace)
	args := []string{"upgrade", "--install", WebhookRelease, "./helm/mtls-webhook",
		"--namespace", WebhookNamespace, "--create-namespace", "--wait", "--timeout", "5m"}
	for _, v := range o.WebhookSet {
		args = append(args, "--set", v)
	}
	if _, err = s.Helm(ctx, args...); err != nil {
		return s, err
	}
	s.timings.Webhook = time.Since(t0)
	close(started)
	s.step("ready: %s", s.timings)
	return s, nil
}

func (s *Stack) step(format string, args ...any) {
	fmt.Fprintf(s.opts.Log, "stack: "+format+"\n", args...)
}

// Timings of Up.
func (s *Stack) Timings() Timings { return s.timings }

// String is the timings as one line.
func (t Timings) String() string {
	return fmt.Sprintf("node Ready %s, NetworkPolicy %s, cert-manager %s, csi-driver %s, webhook %s",
		t.Cluster.NodeReady.Round(100*time.Millisecond), t.NetPol.Round(100*time.Millisecond),
		t.CertManager.Round(100*time.Millisecond), t.CSIDriver.Round(100*time.Millisecond), t.Webhook.Round(100*time.Millisecond))
}

// HelmPath is the pinned helm (make/helm.mk).
func (s *Stack) HelmPath() string { return filepath.Join(s.opts.BinDir, "helm") }

// Helm runs the pinned helm against the cluster from the repository root,
// so chart paths are written as in helm/README.md.
func (s *Stack) Helm(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.HelmPath(), args...)
	cmd.Dir = s.opts.RepoRoot
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig())
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, s.opts.Log)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, logtail.Lines(out.String(), 20))
	}
	return out.Bytes(), nil
}

// Down stops the firewall and the cluster and restores the host.
func (s *Stack) Down() error {
	var errs []error
	if s.Firewall != nil {
		errs = append(errs, s.Firewall.Stop())
	}
	errs = append(errs, s.Stop()) // the cluster's Stop, after the firewall
	s.cancel()
	return errors.Join(errs...)
}
