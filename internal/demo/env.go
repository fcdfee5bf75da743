// Package demo is `make demo`: the whole mtls-webhook flow on the local
// node (internal/stack: a real kubelet on containerd and runc, kube-proxy,
// CoreDNS, kube-router's NetworkPolicy firewall, cert-manager and its
// csi-driver from their own charts, helm/mtls-webhook as helm/README.md
// installs it), then helm/mtls-demo with a live view of requests, serials
// and rotations, the rogue clients and the wire proof. It is a harness (it
// runs as root and changes the host while it runs), not a library.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mtls-demo/mtls-webhook/internal/stack"
)

// EnvOptions configure Start.
type EnvOptions struct {
	// RepoRoot is the repository (default: found from this source file).
	RepoRoot string
	// BinDir holds the binaries and bin/images (default RepoRoot/bin).
	BinDir string
	// StateDir is the cluster's state directory (default BinDir/cluster).
	StateDir string
	// Progress receives one line per start-up step (may be nil).
	Progress io.Writer
}

// Env is the running local cluster with everything installed.
type Env struct {
	Opts      EnvOptions
	Stack     *stack.Stack
	Client    client.Client
	Clientset kubernetes.Interface
	started   time.Time
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
		o.StateDir = filepath.Join(o.BinDir, "cluster")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Start brings the stack up (internal/stack).
func Start(ctx context.Context, o EnvOptions) (*Env, error) {
	o.defaults()
	e := &Env{Opts: o, started: time.Now()}
	st, err := stack.Up(ctx, stack.Options{RepoRoot: o.RepoRoot, BinDir: o.BinDir, StateDir: o.StateDir, Log: &stepWriter{e: e}})
	if err != nil {
		return nil, err
	}
	e.Stack = st
	e.Clientset = st.Client()
	ctrllog.SetLogger(logr.Discard()) // the client logs nothing the demo shows
	if e.Client, err = client.New(st.RESTConfig(), client.Options{}); err != nil {
		_ = st.Down()
		return nil, err
	}
	return e, nil
}

// stepWriter prefixes the stack's progress lines with the time since Start.
type stepWriter struct{ e *Env }

func (w *stepWriter) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] != ' ' && p[0] != '\t' && len(p) < 400 {
		fmt.Fprintf(w.e.Opts.Progress, "[%5.1fs] %s", time.Since(w.e.started).Seconds(), p)
	}
	return len(p), nil
}

func (e *Env) step(format string, args ...any) {
	fmt.Fprintf(e.Opts.Progress, "[%5.1fs] %s\n", time.Since(e.started).Seconds(), fmt.Sprintf(format, args...))
}

// Stop tears the stack down and restores the host.
func (e *Env) Stop() error {
	if e.Stack == nil {
		return nil
	}
	return e.Stack.Down()
}

// Kubeconfig is the admin kubeconfig of the running cluster.
func (e *Env) Kubeconfig() string { return e.Stack.Kubeconfig() }

func (e *Env) poll(timeout time.Duration, what string, f wait.ConditionWithContextFunc) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, f); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// errNoVolume is returned for a pod without the injected volume.
var errNoVolume = errors.New("no mtls-certs volume")

// volumeDir is where the kubelet mounted a pod's CSI volume on the host.
func (e *Env) volumeDir(uid string) (string, error) {
	dir := filepath.Join(e.Stack.KubeletRootDir(), "pods", uid, "volumes", "kubernetes.io~csi", "mtls-certs", "mount")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("pod %s: %w: %w", uid, errNoVolume, err)
	}
	return dir, nil
}
