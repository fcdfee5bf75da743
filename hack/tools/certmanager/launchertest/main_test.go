// Package launchertest runs the four cert-manager launchers as processes
// against a real kube-apiserver and etcd (envtest, binaries from
// KUBEBUILDER_ASSETS, default <repo>/bin), and checks them against what
// cert-manager's own Helm chart passes them.
package launchertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
)

// TestUser is the (system:masters) user the tests act as.
const TestUser = "cert-manager-launcher-test"

// Components are the launchers, by the name of their binary in bin/.
var Components = []string{"controller", "cainjector", "webhook", "startupapicheck"}

var (
	binDir   string // where cert-manager-<component> binaries are
	repoRoot string // /work/main: three levels up from this package
	cmDir    string // the cert-manager v1.19.2 module in the module cache
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "..", "..", "..", ".."))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(repoRoot, "bin"))
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "locating the cert-manager module: %v\n", err)
		return 1
	}
	cmDir = strings.TrimSpace(string(out))

	// make test-certmanager passes the binaries it built (make
	// certmanager-bins); otherwise build them here, from this module.
	binDir = os.Getenv("CERT_MANAGER_BIN_DIR")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "cert-manager-launchers-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		for _, c := range Components {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "cert-manager-"+c), "./cmd/"+c)
			cmd.Dir = filepath.Join(wd, "..")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n", c, err)
				return 1
			}
		}
		binDir = dir
	}
	for _, c := range Components {
		if _, err := os.Stat(Binary(c)); err != nil {
			fmt.Fprintf(os.Stderr, "launcher binary missing: %v\n", err)
			return 1
		}
	}
	return m.Run()
}

// Binary is the path of a launcher.
func Binary(component string) string { return filepath.Join(binDir, "cert-manager-"+component) }

// Env is a running control plane with cert-manager's CRDs.
type Env struct {
	Config     *rest.Config
	Kubeconfig string // admin (system:masters) kubeconfig file
	Client     client.Client
	Kube       kubernetes.Interface
	plane      *envtest.Environment
}

// StartEnv starts etcd and kube-apiserver with cert-manager's CRDs (the
// plain ones shipped in the module's deploy/crds).
func StartEnv(t *testing.T) *Env {
	t.Helper()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(cmDir, "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	if _, err := env.Start(); err != nil {
		t.Fatalf("starting envtest (KUBEBUILDER_ASSETS=%s; `make k8s-bins` builds them): %v", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	user, err := env.ControlPlane.AddUser(envtest.User{Name: TestUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	// The test acts as this user too, so that who asked for what is known.
	cfg := user.Config()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Config: cfg, Kubeconfig: path, Client: c, Kube: kubernetes.NewForConfigOrDie(cfg), plane: env}
}

// Namespace creates a namespace.
func (e *Env) Namespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// Process is a launcher started by Start.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs a launcher with args. At the end of the test it is sent
// SIGTERM and must exit 0 within 15 s; its output is logged when the test
// failed.
func Start(t *testing.T, component string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: component, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(Binary(component), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not exit within 15s of SIGTERM", component)
		}
		if p.err != nil {
			t.Errorf("%s did not shut down cleanly on SIGTERM: %v", component, p.err)
		}
		if t.Failed() {
			t.Logf("---- output of %s %s\n%s", component, strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// Output is what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended, and its error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Eventually polls cond every 200 ms until it returns true, fails the test
// after timeout with the last error, and fails at once when one of the
// processes died.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error), procs ...*Process) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		for _, p := range procs {
			if exited, perr := p.Exited(); exited {
				t.Fatalf("%s: %s exited early (%v)", what, p.Name, perr)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s (last error: %v)", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
