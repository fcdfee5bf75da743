// Command mtls-webhook is the admission webhook that turns annotated pods
// into mTLS pods, and its offline `render` mode.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtls-demo/mtls-webhook/internal/cli"
)

// version is stamped at build time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cli.Version = version
	code := cli.Main(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
