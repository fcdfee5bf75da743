// Package launcher holds what the four cert-manager launchers share: the
// command line (flags first parsed, a --config file loaded, flags parsed
// again so that they win, as cert-manager does), logging, feature gates,
// the version, and the signal handling.
//
// The launchers are stand-ins for cert-manager's own binaries. Upstream
// builds them from nested modules (github.com/cert-manager/cert-manager/cmd/
// controller, .../cmd/webhook, ...) that the Go module proxy here does not
// serve (404) and that the main module zip leaves out; what the v1.19.2 main
// module does hold is every controller, the webhook server and its admission
// plugins, the cainjector reconcilers and the configuration types. The
// launchers are small mains around exactly those packages.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
)

// CertManagerModule is the module whose packages the launchers run.
const CertManagerModule = "github.com/cert-manager/cert-manager"

func init() {
	// Upstream stamps util.AppVersion with -ldflags at release time. The
	// version of the cert-manager module this binary was built against is
	// the honest equivalent (it also names the default ACME solver image
	// and goes into the User-Agent).
	if util.AppVersion == "canary" {
		if v := ModuleVersion(); v != "" {
			util.AppVersion = v
		}
	}
}

// ModuleVersion returns the version of the cert-manager module linked into
// this binary ("" when the build information is missing).
func ModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range bi.Deps {
		if m.Path == CertManagerModule {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return ""
}

// Mode says what a parsed command line asks for.
type Mode int

const (
	// Run the component.
	Run Mode = iota
	// Help was asked for and printed.
	Help
	// ValidateFlags: the command line parsed and validated; do not run.
	ValidateFlags
)

// ValidateFlagsName is a hidden flag of every launcher: parse and validate
// the whole command line (and the --config file), print the result and exit
// without touching the cluster. The chart tests use it to prove that every
// argument a chart passes is accepted.
const ValidateFlagsName = "validate-flags"

// Spec describes a component's command line. T is the component's
// configuration type.
type Spec[T any] struct {
	// Name is the command name printed in usage and errors.
	Name string
	// New returns the configuration with cert-manager's defaults applied.
	New func() (*T, error)
	// Bind registers every flag of the component on fs, bound to c.
	Bind func(fs *pflag.FlagSet, c *T)
	// Load applies the configuration file at path onto a defaulted c. Nil
	// when the component has no --config flag.
	Load func(path string, c *T) error
	// Validate checks the final configuration, as cert-manager validates
	// its configuration objects before it starts.
	Validate func(c *T) error
}

// Parse parses args (without the program name). Unknown flags and stray
// arguments are errors. When --config names a file, the file is applied to
// the defaults first and the flags are parsed again on top of it, so that a
// flag always wins over the file, as in cert-manager.
func (s Spec[T]) Parse(args []string, out io.Writer) (*T, Mode, error) {
	cfg, configPath, validate, err := s.parseOnce(args, out)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, Help, nil
		}
		return nil, Run, err
	}
	if configPath != "" {
		if s.Load == nil {
			return nil, Run, errors.New("--config is not supported")
		}
		fromFile, err := s.New()
		if err != nil {
			return nil, Run, err
		}
		if err := s.Load(configPath, fromFile); err != nil {
			return nil, Run, fmt.Errorf("config file %s: %w", configPath, err)
		}
		fs2 := s.flagSet(fromFile, new(string), new(bool), out)
		if err := fs2.Parse(args); err != nil {
			return nil, Run, err
		}
		cfg = fromFile
	}
	if s.Validate != nil {
		if err := s.Validate(cfg); err != nil {
			return nil, Run, fmt.Errorf("invalid configuration: %w", err)
		}
	}
	if validate {
		return cfg, ValidateFlags, nil
	}
	return cfg, Run, nil
}

func (s Spec[T]) parseOnce(args []string, out io.Writer) (*T, string, bool, error) {
	cfg, err := s.New()
	if err != nil {
		return nil, "", false, err
	}
	var configPath string
	var validate bool
	fs := s.flagSet(cfg, &configPath, &validate, out)
	if err := fs.Parse(args); err != nil {
		return nil, "", false, err
	}
	if fs.NArg() > 0 {
		return nil, "", false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, configPath, validate, nil
}

func (s Spec[T]) flagSet(cfg *T, configPath *string, validate *bool, out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(s.Name, pflag.ContinueOnError)
	fs.SetOutput(out)
	if s.Load != nil {
		fs.StringVar(configPath, "config", "", "Path to a file holding the component's configuration object (flags override it).")
	}
	fs.BoolVar(validate, ValidateFlagsName, false, "Parse and validate the command line and the config file, then exit.")
	_ = fs.MarkHidden(ValidateFlagsName)
	s.Bind(fs, cfg)
	fs.SortFlags = true
	return fs
}

// ApplyLogging applies the logging flags (--v, --vmodule, --logging-format)
// the way cert-manager does, and hands the same logger to controller-runtime.
func ApplyLogging(c *logsapi.LoggingConfiguration) error {
	if err := logf.ValidateAndApply(c); err != nil {
		return fmt.Errorf("logging: %w", err)
	}
	ctrl.SetLogger(klog.Background())
	return nil
}

// ApplyFeatureGates sets cert-manager's process-wide feature gates.
func ApplyFeatureGates(gates map[string]bool) error {
	if len(gates) == 0 {
		return nil
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(gates); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	return nil
}

// SignalContext is cancelled on the first SIGINT or SIGTERM; a second one
// exits at once, as cert-manager's own handler does.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		os.Exit(130)
	}()
	return ctx, cancel
}

// Main runs a launcher's main: parse, then either print the validated
// configuration or run. Exit codes: 0 on success or --help, 1 when run
// fails, 2 on a bad command line.
func Main[T any](s Spec[T], run func(ctx context.Context, c *T) error, describe func(c *T) string) {
	cfg, mode, err := s.Parse(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		os.Exit(2)
	}
	switch mode {
	case Help:
		return
	case ValidateFlags:
		fmt.Fprintf(os.Stdout, "%s: command line valid\n%s", s.Name, describe(cfg))
		return
	}
	ctx, cancel := SignalContext()
	defer cancel()
	if err := run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		logf.FlushLogs()
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		os.Exit(1)
	}
	logf.FlushLogs()
}
