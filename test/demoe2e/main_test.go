// Package demoe2e tests the `make demo` machinery end to end: a real
// kube-apiserver, etcd and kube-controller-manager, cert-manager's
// controllers, the real cert-manager csi-driver binary, the mtls-webhook and
// the node agent running the demo apps. One environment serves the package
// (TestMain); it needs root (mounts, mount namespaces).
package demoe2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/pkg/demo"
	"github.com/mtls-demo/mtls-webhook/pkg/demo/nodeagent"
)

const (
	nsMTLS  = "e2e-mtls"
	nsPlain = "e2e-plain"
	// Renewal every ~20 s: three renewals fit in about a minute.
	certDuration = "2m"
	renewBefore  = "1m40s"
)

var (
	env      *demo.Env
	mtlsRel  *demo.Release
	plainRel *demo.Release
	setupErr error
)

func TestMain(m *testing.M) {
	nodeagent.MaybeRunShim() // the node agent starts pods through this test binary
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		setupErr = fmt.Errorf("these tests need root: the node agent mounts CSI volumes and runs pods in private mount namespaces")
		return m.Run()
	}
	ctx := context.Background()
	o := demo.EnvOptions{StateDir: "/tmp/mtls-demo-e2e", Progress: os.Stderr}
	root := demo.RepoRoot()
	if err := demo.BuildApps(root, root+"/bin"); err != nil {
		setupErr = err
		return m.Run()
	}
	env, setupErr = demo.Start(ctx, o)
	if setupErr != nil {
		return m.Run()
	}
	defer env.Stop()
	if mtlsRel, setupErr = install(ctx, demo.ReleaseOptions{Namespace: nsMTLS}); setupErr != nil {
		return m.Run()
	}
	if plainRel, setupErr = install(ctx, demo.ReleaseOptions{Namespace: nsPlain, Plain: true}); setupErr != nil {
		return m.Run()
	}
	setupErr = mtlsRel.StartClient(ctx, 50*time.Millisecond)
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "demoe2e: logs in %s (kept until the next run)\n", env.LogDir)
	}
	return code
}

func install(ctx context.Context, o demo.ReleaseOptions) (*demo.Release, error) {
	o.CertDuration, o.RenewBefore = certDuration, renewBefore
	r, err := env.Install(ctx, o)
	if err != nil {
		return nil, err
	}
	first, err := r.WaitReady(ctx, 120*time.Second)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "demoe2e: %s ready, first certificate %s after the Deployments were created\n", o.Namespace, first.Round(time.Millisecond))
	return r, nil
}

func setup(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		t.Fatal("setting up the demo environment:", setupErr)
	}
}
