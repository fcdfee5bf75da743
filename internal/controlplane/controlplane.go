// Package controlplane holds what every place that starts a local
// Kubernetes control plane needs: the test suites (charts, integration,
// load) and `make demo`.
package controlplane

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
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
// and stop timeouts that suit a 2-core machine. dir is as for
// CertManagerCRDs. Start it with Start().
func Environment(assets, dir string) (*envtest.Environment, error) {
	crds, err := CertManagerCRDs(dir)
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{crds},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}, nil
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
