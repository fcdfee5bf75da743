// Command e2e-local is `make e2e-local`: it starts the local node with
// everything installed (internal/stack, the same start as `make demo`),
// installs helm/mtls-demo as hack/kind-e2e.sh does on kind, runs the e2e
// suite (test/e2e, `go test -tags e2e -v`) against it, and stops the
// cluster, restoring the host, whatever happened. The suite is the one
// `make kind-e2e` runs on kind.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/images"
	"github.com/mtls-demo/mtls-webhook/internal/stack"
)

func main() {
	os.Exit(run())
}

func run() int {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	fs := flag.NewFlagSet("e2e-local", flag.ContinueOnError)
	binDir := fs.String("bin-dir", filepath.Join(root, "bin"), "binaries and images/")
	stateDir := fs.String("state-dir", "", "the cluster's state (default <bin-dir>/cluster)")
	runRE := fs.String("run", ".", "go test -run expression")
	timeout := fs.Duration("timeout", 40*time.Minute, "go test -timeout")
	keep := fs.Bool("keep", false, "keep the cluster running after the suite (Ctrl-C stops it)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e-local: needs root: the local node runs a kubelet, containerd and runc on this host (try: sudo make e2e-local)")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	t0 := time.Now()
	st, err := stack.Up(ctx, stack.Options{RepoRoot: root, BinDir: *binDir, StateDir: *stateDir, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e-local:", err)
		return 1
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "e2e-local: stopping the cluster and restoring the host")
		if err := st.Down(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e-local: stop:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "e2e-local: stack up in %s (%s); kubeconfig %s\n", time.Since(t0).Round(time.Second), st.Timings(), st.Kubeconfig())

	// As hack/kind-e2e.sh: the demo release the suite's shared tests use.
	if _, err := st.Helm(ctx, "upgrade", "--install", "mtls-demo", "./helm/mtls-demo", "--namespace", "demo",
		"--create-namespace", "--wait", "--timeout", "5m"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-local:", err)
		return 1
	}

	// -parallel 8: the parallel tests (each in a namespace of its own)
	// mostly wait for renewals; go test would run only GOMAXPROCS of them
	// at once, two on a 2-core machine. hack/kind-e2e.sh does the same.
	cmd := exec.CommandContext(ctx, "go", "test", "-tags", "e2e", "-count=1", "-v", "-parallel", "8",
		"-timeout", timeout.String(), "-run", *runRE, "./test/e2e/...")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+st.Kubeconfig(),
		"E2E_HELM="+st.HelmPath(),
		"E2E_WEBHOOK_NAMESPACE="+stack.WebhookNamespace,
		"E2E_DEMO_NAMESPACE=demo",
		"E2E_REGISTRY="+images.DefaultRegistry,
	)
	code := 0
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-local: the suite failed:", err)
		code = 1
	}
	if *keep {
		fmt.Fprintf(os.Stderr, "e2e-local: -keep: cluster running; KUBECONFIG=%s; Ctrl-C stops it\n", st.Kubeconfig())
		<-ctx.Done()
	}
	return code
}
