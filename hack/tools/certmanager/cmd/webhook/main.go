// Command webhook is a stand-in for cert-manager's webhook binary
// (quay.io/jetstack/cert-manager-webhook), built from cert-manager v1.19.2's
// own webhook packages.
//
// Why a stand-in: upstream's main lives in the nested module
// github.com/cert-manager/cert-manager/cmd/webhook, which the Go module proxy
// here does not serve (404) and which the main module zip leaves out. Every
// part that does the work is cert-manager's: the flags and their defaults
// (pkg/webhook/options), the --config file loader (pkg/webhook/configfile),
// the configuration validation, and the server itself
// (internal/webhook.NewCertManagerWebhookServer: the same scheme, defaulting,
// conversion and validation of every cert-manager resource, the
// CertificateRequest identity and approval admission plugins, TLS on
// --secure-port with serving certificates signed by the CA it keeps in the
// --dynamic-serving-ca-secret-* Secret, and /healthz and /livez on
// --healthz-port, which the chart's probes call on :6080).
package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cert-manager/cert-manager/mtls-demo-launchers/internal/launcher"

	config "github.com/cert-manager/cert-manager/internal/apis/config/webhook"
	"github.com/cert-manager/cert-manager/internal/apis/config/webhook/validation"
	cmwebhook "github.com/cert-manager/cert-manager/internal/webhook"
	_ "github.com/cert-manager/cert-manager/internal/webhook/feature" // the webhook's feature gates
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	utilconfigfile "github.com/cert-manager/cert-manager/pkg/util/configfile"
	"github.com/cert-manager/cert-manager/pkg/webhook/configfile"
	"github.com/cert-manager/cert-manager/pkg/webhook/options"
)

var spec = launcher.Spec[config.WebhookConfiguration]{
	Name: "cert-manager-webhook",
	New:  options.NewWebhookConfiguration,
	Bind: func(fs *pflag.FlagSet, c *config.WebhookConfiguration) { options.AddConfigFlags(fs, c) },
	Load: func(path string, c *config.WebhookConfiguration) error {
		loader, err := utilconfigfile.NewConfigurationFSLoader(nil, path)
		if err != nil {
			return err
		}
		f := configfile.New()
		if err := loader.Load(f); err != nil {
			return err
		}
		*c = *f.Config
		return nil
	},
	Validate: func(c *config.WebhookConfiguration) error {
		return validation.ValidateWebhookConfiguration(c, field.NewPath("config")).ToAggregate()
	},
}

func main() {
	launcher.Main(spec, run, describe)
}

func describe(c *config.WebhookConfiguration) string {
	return fmt.Sprintf("secure-port=%d\nhealthz-port=%d\ndynamic-serving-ca-secret=%s/%s\ndynamic-serving-dns-names=%s\nmetrics=%s\n",
		c.SecurePort, c.HealthzPort, c.TLSConfig.Dynamic.SecretNamespace, c.TLSConfig.Dynamic.SecretName,
		strings.Join(c.TLSConfig.Dynamic.DNSNames, ","), c.MetricsListenAddress)
}

func run(ctx context.Context, c *config.WebhookConfiguration) error {
	if err := launcher.ApplyLogging(&c.Logging); err != nil {
		return err
	}
	if err := launcher.ApplyFeatureGates(c.FeatureGates); err != nil {
		return err
	}
	log := logf.Log.WithName("webhook")
	ctx = logf.NewContext(ctx, log)
	log.Info("starting cert-manager webhook (mtls-demo stand-in for the upstream binary)", "version", launcher.ModuleVersion())
	srv, err := cmwebhook.NewCertManagerWebhookServer(log, *c)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
