// Command cluster starts or cleans up the local cluster by hand (as root):
//
//	go run ./hack/cluster up [--bin-dir bin] [--state-dir bin/cluster] [image.tar...]
//	go run ./hack/cluster down [--bin-dir bin] [--state-dir bin/cluster]
//
// up runs in the foreground until Ctrl-C (or SIGTERM), then stops the
// cluster and restores the host; down undoes a run that was killed.
// make cluster-up / make cluster-down call it with bin/images/*.tar.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mtls-demo/mtls-webhook/internal/cluster"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down [--bin-dir DIR] [--state-dir DIR] [image.tar...]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	binDir := fs.String("bin-dir", "bin", "directory of the binaries (make k8s-bins node-bins)")
	stateDir := fs.String("state-dir", "", "state directory (default <bin-dir>/cluster)")
	_ = fs.Parse(os.Args[2:])
	if *stateDir == "" {
		*stateDir = filepath.Join(*binDir, "cluster")
	}
	if err := run(os.Args[1], *binDir, *stateDir, fs.Args()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(cmd, binDir, stateDir string, images []string) error {
	if cmd == "down" {
		if err := cluster.Cleanup(stateDir); err != nil {
			return err
		}
		fmt.Println("host restored")
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := cluster.Start(ctx, cluster.Options{BinDir: binDir, StateDir: stateDir, Images: images, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { _ = c.Stop() }() // also on a panic; Stop runs once
	fmt.Printf("cluster ready (%s)\n  export KUBECONFIG=%s\n  logs: %s\nCtrl-C stops it and restores the host.\n",
		c.Timings(), c.Kubeconfig(), filepath.Join(c.StateDir(), "logs"))
	<-ctx.Done()
	return c.Stop()
}
