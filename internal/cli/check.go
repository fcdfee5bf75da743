package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mtls-demo/mtls-webhook/internal/check"
)

// chartName is helm/mtls-webhook's name, from which the release's object
// names derive (the helper mtls-webhook.fullname).
const chartName = "mtls-webhook"

// serviceAccountNamespaceFile is where a pod learns its namespace.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// CheckOptions are the flags of `check`.
type CheckOptions struct {
	Kubeconfig      string
	Namespace       string
	Release         string
	Name            string
	CanaryNamespace string
	Issuer          string
	Issuers         string
	DefaultIssuer   string
	AllowedIssuers  string
	Timeout         time.Duration
	Output          string
}

func (o *CheckOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG and ~/.kube/config)")
	fs.StringVar(&o.Namespace, "namespace", defaultNamespace(), "the release's namespace, where the webhook runs (default: this pod's namespace, else mtls-system)")
	fs.StringVar(&o.Release, "release", chartName, "the Helm release name; object names derive from it as the chart's fullname helper does")
	fs.StringVar(&o.Name, "name", "", "the chart's full name (fullnameOverride), which names the MutatingWebhookConfiguration, Deployment and Service (default: derived from --release)")
	fs.StringVar(&o.CanaryNamespace, "canary-namespace", "default", "namespace of the dry-run canary pod and Certificate; the webhook must serve it (the release namespace does not)")
	fs.StringVar(&o.Issuer, "issuer", "", "mtls.demo/issuer of the canary pod (default: none, the webhook's --default-issuer applies)")
	fs.StringVar(&o.Issuers, "required-issuers", "", "comma list of issuers that must exist and be Ready, as Issuer/<namespace>/<name> or ClusterIssuer/<name>")
	fs.StringVar(&o.DefaultIssuer, "default-issuer", "", "the webhook's default issuer as Kind/name (Issuer/x, ClusterIssuer/x); set with --allowed-issuers to skip reading the webhook Deployment's args")
	fs.StringVar(&o.AllowedIssuers, "allowed-issuers", "", "the webhook's --allowed-issuers; set with --default-issuer to skip reading the webhook Deployment's args")
	fs.DurationVar(&o.Timeout, "timeout", time.Minute, "how long failing checks are retried (a fresh install needs a few seconds)")
	fs.StringVar(&o.Output, "o", string(check.Table), "output: table or json")
}

// defaultNamespace is the pod's own namespace in a cluster, else where
// helm/README.md installs the webhook.
func defaultNamespace() string {
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "mtls-system"
}

// Fullname is the chart's fullname helper: the release name when it
// contains the chart name, else "<release>-<chart>", cut to 52 characters.
func Fullname(release string) string {
	name := release
	if !strings.Contains(release, chartName) {
		name = release + "-" + chartName
	}
	if len(name) > 52 {
		name = name[:52]
	}
	return strings.TrimSuffix(name, "-")
}

// checker validates the options and builds what they describe, without
// the clients.
func (o *CheckOptions) checker(progress io.Writer) (*check.Checker, check.Format, error) {
	var errs []error
	format, err := check.ParseFormat(o.Output)
	errs = append(errs, err)
	if o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout=%s: must be positive", o.Timeout))
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("--namespace: must not be empty"))
	}
	if o.CanaryNamespace == "" {
		errs = append(errs, errors.New("--canary-namespace: must not be empty"))
	}
	name := o.Name
	if name == "" {
		if o.Release == "" {
			errs = append(errs, errors.New("--release or --name: one must be set"))
		}
		name = Fullname(o.Release)
	}
	c := &check.Checker{Options: check.Options{
		Namespace: o.Namespace, Name: name, CanaryNamespace: o.CanaryNamespace, CanaryIssuer: o.Issuer,
		Timeout: o.Timeout, Progress: progress,
	}}
	for _, s := range splitFlag(o.Issuers) {
		r, err := check.ParseIssuerRef(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--required-issuers: %w", err))
			continue
		}
		c.RequiredIssuers = append(c.RequiredIssuers, r)
	}
	if o.DefaultIssuer != "" || o.AllowedIssuers != "" {
		flags := map[string]string{check.FlagAllowedIssuers: o.AllowedIssuers}
		if o.DefaultIssuer != "" {
			kind, issuer, found := strings.Cut(o.DefaultIssuer, "/")
			if !found || issuer == "" || (kind != "Issuer" && kind != "ClusterIssuer") {
				errs = append(errs, fmt.Errorf("--default-issuer=%q: want Issuer/<name> or ClusterIssuer/<name>", o.DefaultIssuer))
			}
			flags[check.FlagDefaultIssuer], flags[check.FlagDefaultIssuerKind] = issuer, kind
		}
		c.WebhookFlags = flags
	}
	return c, format, errors.Join(errs...)
}

// Check implements `check`: it prints the report and fails when a check
// failed. cfg, when not nil, replaces the kubeconfig lookup.
func Check(ctx context.Context, args []string, cfg *rest.Config, stdio IO) error {
	var o CheckOptions
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stdio.Err)
	o.bind(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, format, err := o.checker(stdio.Err)
	if err != nil {
		// Bad flag values are usage errors, as flags the parser refused.
		fmt.Fprintln(stdio.Err, "check:", err)
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if cfg == nil {
		if cfg, err = checkConfig(o.Kubeconfig); err != nil {
			return err
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "mtls-webhook-check/" + Version
	// The dry runs' admission warnings are not the report's business.
	cfg.WarningHandler = rest.NoWarnings{}
	if c.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	rep := c.Run(ctx)
	if err := rep.Write(stdio.Out, format); err != nil {
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return fmt.Errorf("%d of %d checks failed: %s", len(failed), len(rep.Checks), strings.Join(failed, ", "))
	}
	return nil
}

// checkConfig prefers the in-cluster configuration (the `helm test` pod),
// then --kubeconfig, $KUBECONFIG and ~/.kube/config.
func checkConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if in, err := rest.InClusterConfig(); err == nil {
			return in, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes configuration (in-cluster, --kubeconfig, $KUBECONFIG or ~/.kube/config): %w", err)
	}
	return cfg, nil
}
