// Package controlplane holds what every place that starts a local
// Kubernetes control plane needs: the test suites (charts, integration,
// load) and `make demo`.
package controlplane

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtls-demo/mtls-webhook/internal/procid"
)

// CertManagerCRDs returns the directory of cert-manager's CRD manifests
// inside the cert-manager module this repository requires, so the CRDs
// always match the Go types the webhook reads. dir is a directory of the
// main module ("" for the current one).
func CertManagerCRDs(dir string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the cert-manager module (go list -m): %w", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")
	if _, err := os.Stat(filepath.Join(crds, "cert-manager.io_issuers.yaml")); err != nil {
		return "", fmt.Errorf("cert-manager CRDs: %w", err)
	}
	return crds, nil
}

// FreePorts reserves n distinct loopback ports by binding them all at once,
// then releases them for a server to bind.
func FreePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Environment describes an envtest control plane (etcd and kube-apiserver
// from assets, usually bin/) with cert-manager's CRDs installed, and start
// and stop timeouts that suit a 2-core machine, its processes tied to the
// caller's life (DieWithCaller). dir is as for CertManagerCRDs. Start it
// with Start().
func Environment(assets, dir string) (*envtest.Environment, error) {
	crds, err := CertManagerCRDs(dir)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{crds},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if err := DieWithCaller(env, assets); err != nil {
		return nil, err
	}
	return env, nil
}

// WriteAdminKubeconfig adds a system:masters user named name to env's
// control plane and writes its kubeconfig to path (0600), for a process of
// the test or demo (controller manager, csi-driver, webhook) to use.
func WriteAdminKubeconfig(env *envtest.Environment, name, path string) error {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding user %s: %w", name, err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, kc, 0o600)
}

// Warnings records the API warnings (HTTP Warning headers) a client gets
// back, which is how admission warnings reach kubectl users. Set it as a
// rest.Config's WarningHandler.
type Warnings struct {
	mu   sync.Mutex
	msgs []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// Take returns the warnings recorded since the last call.
func (w *Warnings) Take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// DieWithCaller makes env start etcd and kube-apiserver (from assets) so
// that nothing they hold outlives the process that started them, on every
// path:
//   - the kernel kills them when that process dies without stopping them (a
//     panic, go test's -timeout, kill -9). envtest starts them itself and
//     exposes no hook for the death signal Start sets on the processes this
//     package runs, so each binary is started through util-linux's setpriv
//     --pdeathsig KILL, which sets it and execs the binary;
//   - their data and certificate directories go into one run directory of
//     this package's, which Stop removes, and which the next DieWithCaller
//     removes when the process that made it is gone (envtest's own
//     directories stay behind when it is not stopped).
//
// Call it before env.Start, and stop env with Stop.
func DieWithCaller(env *envtest.Environment, assets string) error {
	etcd, err := deathSignalled(filepath.Join(assets, "etcd"))
	if err != nil {
		return err
	}
	apiserver, err := deathSignalled(filepath.Join(assets, "kube-apiserver"))
	if err != nil {
		return err
	}
	run, err := newRunDir()
	if err != nil {
		return err
	}
	if env.ControlPlane.Etcd == nil {
		env.ControlPlane.Etcd = &envtest.Etcd{}
	}
	env.ControlPlane.Etcd.Path = etcd
	env.ControlPlane.Etcd.DataDir = filepath.Join(run, "etcd")
	api := env.ControlPlane.GetAPIServer()
	api.Path = apiserver
	api.CertDir = filepath.Join(run, "apiserver")
	for _, d := range []string{env.ControlPlane.Etcd.DataDir, api.CertDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops env and removes the run directory DieWithCaller gave it.
func Stop(env *envtest.Environment) error {
	err := env.Stop()
	if env.ControlPlane.Etcd != nil {
		if run := filepath.Dir(env.ControlPlane.Etcd.DataDir); isRunDir(run) {
			err = errors.Join(err, os.RemoveAll(run))
		}
	}
	return err
}

// stateRoot is where this package keeps its wrappers and run directories.
func stateRoot() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("mtls-controlplane-%d", os.Getuid()))
}

const runPrefix = "run-"

// newRunDir removes the run directories of processes that are gone and
// makes one for this process: run-<pid>-<start ticks>-<random>, so that a
// reused PID is not mistaken for its owner.
func newRunDir() (string, error) {
	root := stateRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		var pid int
		var ticks uint64
		if _, err := fmt.Sscanf(e.Name(), runPrefix+"%d-%d-", &pid, &ticks); err != nil || !e.IsDir() {
			continue
		}
		if !procid.Running(pid, ticks) {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
	self := os.Getpid()
	return os.MkdirTemp(root, fmt.Sprintf("%s%d-%d-", runPrefix, self, procid.StartTicks(self)))
}

func isRunDir(dir string) bool {
	return filepath.Dir(dir) == stateRoot() && strings.HasPrefix(filepath.Base(dir), runPrefix)
}

// deathSignalled writes (once per binary path) a wrapper script that execs
// binary with the parent-death signal set to SIGKILL, and returns its path.
// The exec keeps the process the caller's child, so the signal is tied to
// the caller.
func deathSignalled(binary string) (string, error) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return "", fmt.Errorf("setpriv (util-linux) not found: it starts %s so that it dies with the test that started it: %w", binary, err)
	}
	abs, err := filepath.Abs(binary)
	if err != nil {
		return "", err
	}
	if strings.ContainsRune(abs, '\'') {
		return "", fmt.Errorf("%q: a path with a single quote cannot be wrapped", abs)
	}
	dir := stateRoot()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(setpriv + "\x00" + abs))
	wrapper := filepath.Join(dir, fmt.Sprintf("%s-%x", filepath.Base(abs), sum[:6]))
	script := fmt.Sprintf("#!/bin/sh\nexec '%s' --pdeathsig KILL -- '%s' \"$@\"\n", setpriv, abs)
	if b, err := os.ReadFile(wrapper); err == nil && string(b) == script {
		return wrapper, nil
	}
	// Written beside and renamed: test packages running in parallel may
	// write the same wrapper at once.
	tmp, err := os.CreateTemp(dir, ".wrapper-")
	if err != nil {
		return "", err
	}
	if _, err := tmp.WriteString(script); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return wrapper, os.Rename(tmp.Name(), wrapper)
}
