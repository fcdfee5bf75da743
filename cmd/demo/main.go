// Command demo is `make demo`: the whole mtls-webhook flow on one machine,
// without Docker — etcd, kube-apiserver, kube-controller-manager,
// cert-manager's controllers, the real cert-manager csi-driver, the webhook
// and a node agent playing the kubelet — with a live view of requests,
// serials and rotations. See docs/demo.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/pkg/demo"
	"github.com/mtls-demo/mtls-webhook/pkg/demo/nodeagent"
)

func main() {
	nodeagent.MaybeRunShim() // pods are started through this very binary
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var o demo.Options
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long and print the summary (0: until Ctrl-C)")
	fs.StringVar(&o.Scene, "scene", demo.SceneReload, "reload (Case 3: hot reload), restart (Case 2: CERT_RELOAD=false + rollout restart) or plain (USE_MTLS=false, JSON on the wire)")
	fs.DurationVar(&o.Interval, "interval", 100*time.Millisecond, "time between the load client's requests")
	fs.StringVar(&o.CertDuration, "cert-duration", "10m", "lifetime of the pods' certificates (mtls.demo/duration)")
	fs.StringVar(&o.RenewBefore, "renew-before", "9m30s", "renew this long before expiry (mtls.demo/renew-before): 10m/9m30s renews every ~30s")
	fs.BoolVar(&o.Rogue, "rogue", true, "at the end, try the backend as a client without a certificate and with another CA's certificate")
	fs.StringVar(&o.Env.StateDir, "state-dir", "/tmp/mtls-demo", "state, mounts and logs (unmounted and cleaned at start and exit)")
	fs.StringVar(&o.Env.BinDir, "bin-dir", "", "directory with etcd, kube-apiserver, kube-controller-manager, cert-manager-csi-driver, helm (default: <repo>/bin)")
	fs.StringVar(&o.Namespace, "namespace", "mtls-demo", "namespace of the demo release")
	noBuild := fs.Bool("no-build", false, "do not (re)build the demo apps into the bin directory")
	plainOut := fs.Bool("plain-output", false, "print plain lines even on a terminal")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch o.Scene {
	case demo.SceneReload, demo.SceneRestart, demo.ScenePlain:
	default:
		fmt.Fprintf(os.Stderr, "demo: --scene=%q: must be reload, restart or plain\n", o.Scene)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root: the node agent mounts the CSI driver's volumes and gives every pod a private mount namespace (try: sudo make demo)")
		return 1
	}
	o.TTY = demo.IsTTY(os.Stdout) && !*plainOut
	o.Out = os.Stdout
	root := demo.RepoRoot()
	if o.Env.BinDir == "" {
		o.Env.BinDir = root + "/bin"
	}
	if !*noBuild {
		fmt.Println("building the demo apps (backend, frontend, client) into", o.Env.BinDir)
		if err := demo.BuildApps(root, o.Env.BinDir); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := demo.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Println(sum.Line())
	if err := sum.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		return 1
	}
	return 0
}
