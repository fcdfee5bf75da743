// Command demo is `make demo`: the whole mtls-webhook flow on one machine,
// without Docker, on a real node (kubelet, containerd and runc) with
// cert-manager, its csi-driver and the webhook installed from their charts,
// and a live view of requests, serials and rotations. See docs/demo.md.
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

	"github.com/mtls-demo/mtls-webhook/internal/demo"
)

func main() {
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
	fs.BoolVar(&o.CARollover, "ca-rollover", false, "under load, renew the demo's root CA a third into --duration (same key) and rotate its issuing CA's key halfway; the summary's failed count is the outage")
	fs.BoolVar(&o.Rogue, "rogue", true, "at the end, try the backend as a client without a certificate and with another CA's certificate")
	fs.StringVar(&o.Env.StateDir, "state-dir", "", "the cluster's state and logs (default: <bin-dir>/cluster; emptied at start, the host restored at exit)")
	fs.StringVar(&o.Env.BinDir, "bin-dir", "", "directory with the cluster's binaries and images/ (default: <repo>/bin)")
	fs.StringVar(&o.Namespace, "namespace", "mtls-demo", "namespace of the demo release")
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
		fmt.Fprintln(os.Stderr, "demo: needs root: it runs a kubelet, containerd and runc, a CNI bridge, kube-proxy and kube-router on this host (try: sudo make demo)")
		return 1
	}
	o.TTY = demo.IsTTY(os.Stdout) && !*plainOut
	o.Out = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := demo.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	for _, l := range sum.CALines() {
		fmt.Println(l)
	}
	fmt.Println(sum.Line())
	fmt.Printf("node Ready after %s, first certificate %s after helm install, cluster memory %.0f MiB\n",
		sum.NodeReady.Round(100*time.Millisecond), sum.FirstCert.Round(100*time.Millisecond), float64(sum.MemoryBytes)/(1<<20))
	if err := sum.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		return 1
	}
	return 0
}
