// Command client is the demo's load and test client: it POSTs numbered
// requests to the frontend, prints each answer and ends with a summary. See
// docs/demo-apps.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtls-demo/mtls-webhook/demo-apps/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.RunClient(ctx, version, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
