package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/render"
	"github.com/mtls-demo/mtls-webhook/pkg/webhook"
)

const usage = `mtls-webhook injects cert-manager CSI certificates into pods annotated mtls.demo/enable: "true".

Usage:
  mtls-webhook [serve] [flags]     run the admission webhook (default)
  mtls-webhook render -f FILE|-    print the injected YAML, no cluster needed
  mtls-webhook check [flags]       check a running install (exit 1 when a check fails)
  mtls-webhook version             print the version

Run "mtls-webhook serve -h", "mtls-webhook render -h" or "mtls-webhook check -h" for the flags.
`

// Version is the binary's version, set by main from its build stamp and
// printed by `mtls-webhook version` and at start-up.
var Version = "dev"

// IO is where a command reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// Main runs the command line args (without the program name) and returns
// the process exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = Serve(ctx, args, nil, stdio)
	case "render":
		err = Render(args, stdio)
	case "check":
		err = Check(ctx, args, nil, stdio)
	case "help":
		fmt.Fprint(stdio.Out, usage)
		return 0
	case "version":
		fmt.Fprintln(stdio.Out, "mtls-webhook", Version)
		return 0
	default:
		fmt.Fprintf(stdio.Err, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stdio.Err, "error:", err)
	return 1
}

// errUsage marks flag errors the flag package has already printed.
var errUsage = errors.New("usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}

// Serve runs the admission webhook until ctx is done. cfg, when not nil,
// replaces the kubeconfig lookup; tests use it to point the very same code
// path at their API server.
func Serve(ctx context.Context, args []string, cfg *rest.Config, stdio IO) error {
	o, inj, mode, level, err := parseServe(args, stdio.Err)
	if err != nil {
		return err
	}

	log := zap.New(zap.WriteTo(stdio.Err), zap.UseDevMode(false), zap.Level(level), zap.JSONEncoder())
	ctrl.SetLogger(log)

	if cfg == nil {
		if cfg, err = loadConfig(o.Kubeconfig); err != nil {
			return err
		}
	}
	mgr, err := webhook.NewManager(cfg, webhook.ServerOptions{
		CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName,
		Host: o.Host, Port: o.Port, HealthAddr: o.HealthAddr, MetricsAddr: o.MetricsAddr,
		IssuerCheck: mode, Injector: inj, Log: log,
	})
	if err != nil {
		return err
	}
	log.Info("starting", "version", Version, "port", o.Port, "certDir", o.CertDir, "issuerCheck", mode,
		"allowedIssuers", inj.Policy.AllowedIssuers, "allowAnyDNSNames", o.AllowAnyDNSNames)
	return mgr.Start(ctx)
}

// CheckServeArgs parses and validates `serve` arguments without serving:
// the Helm chart's tests use it so that the chart cannot pass a flag the
// binary refuses.
func CheckServeArgs(args []string) error {
	_, _, _, _, err := parseServe(args, io.Discard)
	return err
}

func parseServe(args []string, errOut io.Writer) (ServeOptions, *inject.Injector, webhook.IssuerCheckMode, zapcore.Level, error) {
	var o ServeOptions
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(errOut)
	o.bind(fs)
	if err := parse(fs, args); err != nil {
		return o, nil, "", 0, err
	}
	inj, err := o.Injector()
	mode, modeErr := webhook.ParseIssuerCheckMode(o.IssuerCheck)
	level, levelErr := parseLevel(o.LogLevel)
	return o, inj, mode, level, errors.Join(err, modeErr, levelErr)
}

func loadConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if in, inErr := rest.InClusterConfig(); inErr == nil {
			return in, nil
		}
		return nil, fmt.Errorf("no Kubernetes configuration (--kubeconfig, $KUBECONFIG or in-cluster): %w", err)
	}
	return cfg, nil
}

func parseLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug":
		return zapcore.DebugLevel, nil
	case "info":
		return zapcore.InfoLevel, nil
	case "warn":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return 0, fmt.Errorf("--log-level=%q: must be debug, info, warn or error", s)
}

// Render implements `render`: it prints the injected documents, or the
// webhook's errors on stderr and fails.
func Render(args []string, stdio IO) error {
	var o RenderOptions
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stdio.Err)
	o.bind(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.File == "" {
		fmt.Fprintln(stdio.Err, "render: -f FILE (or -f - for standard input) is required")
		return errUsage
	}
	inj, err := o.Injector()
	if err != nil {
		return err
	}
	in, closeIn, err := open(o.File, stdio.In)
	if err != nil {
		return err
	}
	defer closeIn()

	var services []corev1.Service
	if o.ServicesFile != "" {
		if services, err = readServices(o.ServicesFile, o.Namespace); err != nil {
			return err
		}
	}
	res, err := render.Render(in, stdio.Out, render.Options{Injector: inj, Services: services, Namespace: o.Namespace})
	for _, w := range res.Warnings {
		fmt.Fprintln(stdio.Err, "Warning:", w)
	}
	for _, e := range res.Errors {
		fmt.Fprintln(stdio.Err, "denied:", e)
	}
	if err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("the webhook would refuse %d problem(s) above; nothing was printed", len(res.Errors))
	}
	return nil
}

func open(name string, stdin io.Reader) (io.Reader, func(), error) {
	if name == "-" {
		return stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

func readServices(name, namespace string) ([]corev1.Service, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--services: %w", err)
	}
	defer func() { _ = f.Close() }()
	svcs, err := render.ReadServices(f, namespace)
	if err != nil {
		return nil, fmt.Errorf("--services %s: %w", name, err)
	}
	return svcs, nil
}
