// Command startupapicheck is a stand-in for cert-manager's startupapicheck
// binary (quay.io/jetstack/cert-manager-startupapicheck), which the chart's
// post-install Job runs as `check api --wait=1m -v`.
//
// Why a stand-in: upstream's main lives in the nested module
// github.com/cert-manager/cert-manager/cmd/startupapicheck, which the Go
// module proxy here does not serve (404). The check itself is
// cert-manager's own (pkg/util/cmapichecker): a dry-run create of a valid
// CertificateRequest, which the mutating webhook must fill with the
// requester's identity, and of an invalid one, which the validating webhook
// must refuse. So it passes only when the CRDs are served, the webhook runs
// and the API server trusts it (the cainjector injected its CA). It retries
// until --wait runs out, as upstream.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cert-manager/cert-manager/mtls-demo-launchers/internal/launcher"

	logsapi "k8s.io/component-base/logs/api/v1"

	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util/cmapichecker"
)

type options struct {
	Wait       time.Duration
	Interval   time.Duration
	Verbose    bool
	Kubeconfig string
	Context    string
	Namespace  string
	Validate   bool
	Logging    *logsapi.LoggingConfiguration
}

// parse reads `check api [flags]`; flags may come before or after the
// subcommand words, as with cobra.
func parse(args []string) (*options, error) {
	o := &options{Interval: 5 * time.Second, Logging: logsapi.NewLoggingConfiguration()}
	fs := pflag.NewFlagSet("cert-manager-startupapicheck", pflag.ContinueOnError)
	fs.DurationVar(&o.Wait, "wait", 0, "Keep checking until the API is ready or this much time has passed (0: check once).")
	fs.DurationVar(&o.Interval, "interval", o.Interval, "Time between checks while waiting.")
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "Print the error of every failed check.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig (default: in-cluster, $KUBECONFIG or ~/.kube/config).")
	fs.StringVar(&o.Context, "context", "", "kubeconfig context to use.")
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "Namespace of the dry-run CertificateRequests (default: $POD_NAMESPACE, then the kubeconfig's).")
	fs.BoolVar(&o.Validate, launcher.ValidateFlagsName, false, "Parse and validate the command line, then exit.")
	_ = fs.MarkHidden(launcher.ValidateFlagsName)
	// cert-manager's logging flags, but `-v` alone is --verbose (what the
	// chart passes); the log level stays reachable as --v=N.
	var logFlags pflag.FlagSet
	logf.AddFlags(o.Logging, &logFlags)
	logFlags.VisitAll(func(f *pflag.Flag) {
		f.Shorthand = ""
		fs.AddFlag(f)
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if rest := fs.Args(); len(rest) != 2 || rest[0] != "check" || rest[1] != "api" {
		return nil, fmt.Errorf("usage: startupapicheck check api [--wait=DURATION] [-v]; got arguments %q", rest)
	}
	if o.Interval <= 0 {
		return nil, errors.New("--interval must be positive")
	}
	return o, nil
}

func main() {
	o, err := parse(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "startupapicheck: %v\n", err)
		os.Exit(2)
	}
	if o.Validate {
		fmt.Printf("cert-manager-startupapicheck: command line valid\nwait=%s\nverbose=%t\n", o.Wait, o.Verbose)
		return
	}
	if err := launcher.ApplyLogging(o.Logging); err != nil {
		fmt.Fprintf(os.Stderr, "startupapicheck: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := launcher.SignalContext()
	defer cancel()
	if err := check(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("The cert-manager API is ready")
}

func check(ctx context.Context, o *options) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context})
	restCfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	ns := o.Namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return fmt.Errorf("namespace: %w", err)
		}
	}
	checker, err := cmapichecker.New(restCfg, ns)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(o.Wait)
	for {
		err := checker.Check(ctx)
		if err == nil {
			return nil
		}
		// cert-manager's own reading of the error (CRDs missing, webhook
		// not reachable, CA not injected yet, ...), then the raw error.
		if simple := cmapichecker.TranslateToSimpleError(err); simple != nil {
			err = fmt.Errorf("%w: %w", simple, err)
		}
		if o.Verbose {
			fmt.Fprintf(os.Stderr, "Not ready: %v\n", err)
		}
		if time.Now().Add(o.Interval).After(deadline) {
			return fmt.Errorf("the cert-manager API is not ready after %s: %w", o.Wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Interval):
		}
	}
}
