// Command cainjector is a stand-in for cert-manager's cainjector binary
// (quay.io/jetstack/cert-manager-cainjector), built from cert-manager
// v1.19.2's own cainjector packages.
//
// Why a stand-in: upstream's main lives in the nested module
// github.com/cert-manager/cert-manager/cmd/cainjector, which the Go module
// proxy here does not serve (404) and which the main module zip leaves out.
// The configuration type, its defaults, the --config loader and the
// validation are cert-manager's; the reconcilers that copy a CA into the
// caBundle of annotated webhook configurations, CRDs and APIServices are
// cert-manager's own (pkg/controller/cainjector.RegisterAllInjectors), run
// by a controller-runtime manager with leader election on the
// "cert-manager-cainjector-leader-election" Lease, as upstream. The flags
// below carry cert-manager's names, types and meaning.
package main

import (
	"context"
	gotls "crypto/tls"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	cliflag "k8s.io/component-base/cli/flag"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cert-manager/cert-manager/mtls-demo-launchers/internal/launcher"

	config "github.com/cert-manager/cert-manager/internal/apis/config/cainjector"
	configscheme "github.com/cert-manager/cert-manager/internal/apis/config/cainjector/scheme"
	"github.com/cert-manager/cert-manager/internal/apis/config/cainjector/validation"
	"github.com/cert-manager/cert-manager/internal/apis/config/shared"
	_ "github.com/cert-manager/cert-manager/internal/cainjector/feature" // the cainjector's feature gates
	"github.com/cert-manager/cert-manager/internal/kube"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	configv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/cainjector/v1alpha1"
	cainjectorconfigfile "github.com/cert-manager/cert-manager/pkg/cainjector/configfile"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/server/tls"
	"github.com/cert-manager/cert-manager/pkg/server/tls/authority"
	"github.com/cert-manager/cert-manager/pkg/util"
	utilconfigfile "github.com/cert-manager/cert-manager/pkg/util/configfile"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
)

// leaseName is upstream's cainjector Lease (the chart's RBAC grants it).
const leaseName = "cert-manager-cainjector-leader-election"

var spec = launcher.Spec[config.CAInjectorConfiguration]{
	Name: "cert-manager-cainjector",
	New:  newConfiguration,
	Bind: bindFlags,
	Load: func(path string, c *config.CAInjectorConfiguration) error {
		loader, err := utilconfigfile.NewConfigurationFSLoader(nil, path)
		if err != nil {
			return err
		}
		f := cainjectorconfigfile.New()
		if err := loader.Load(f); err != nil {
			return err
		}
		*c = *f.Config
		return nil
	},
	Validate: func(c *config.CAInjectorConfiguration) error {
		return validation.ValidateCAInjectorConfiguration(c, field.NewPath("config")).ToAggregate()
	},
}

func main() {
	launcher.Main(spec, run, describe)
}

// newConfiguration is the v1alpha1 configuration with cert-manager's
// defaulting functions applied, converted to the internal type.
func newConfiguration() (*config.CAInjectorConfiguration, error) {
	scheme, _, err := configscheme.NewSchemeAndCodecs()
	if err != nil {
		return nil, err
	}
	versioned := &configv1alpha1.CAInjectorConfiguration{}
	scheme.Default(versioned)
	c := &config.CAInjectorConfiguration{}
	if err := scheme.Convert(versioned, c, nil); err != nil {
		return nil, err
	}
	return c, nil
}

func bindFlags(fs *pflag.FlagSet, c *config.CAInjectorConfiguration) {
	fs.StringVar(&c.KubeConfig, "kubeconfig", c.KubeConfig, "Path to a kubeconfig; only needed out of cluster.")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "Inject only into resources of this namespace; empty means all.")
	fs.BoolVar(&c.LeaderElectionConfig.Enabled, "leader-elect", c.LeaderElectionConfig.Enabled, "Run the injectors only while holding the leader election lease.")
	fs.StringVar(&c.LeaderElectionConfig.Namespace, "leader-election-namespace", c.LeaderElectionConfig.Namespace, "Namespace of the leader election Lease.")
	fs.DurationVar(&c.LeaderElectionConfig.LeaseDuration, "leader-election-lease-duration", c.LeaderElectionConfig.LeaseDuration, "How long non-leaders wait after a renewal before trying to take the lease.")
	fs.DurationVar(&c.LeaderElectionConfig.RenewDeadline, "leader-election-renew-deadline", c.LeaderElectionConfig.RenewDeadline, "How long the leader keeps retrying to renew before it gives up leading.")
	fs.DurationVar(&c.LeaderElectionConfig.RetryPeriod, "leader-election-retry-period", c.LeaderElectionConfig.RetryPeriod, "Interval between attempts to acquire or renew the lease.")

	fs.BoolVar(&c.EnableDataSourceConfig.Certificates, "enable-certificates-data-source", c.EnableDataSourceConfig.Certificates, "Accept cert-manager.io Certificates (cert-manager.io/inject-ca-from) as CA sources.")
	fs.BoolVar(&c.EnableInjectableConfig.ValidatingWebhookConfigurations, "enable-validatingwebhookconfigurations-injectable", c.EnableInjectableConfig.ValidatingWebhookConfigurations, "Inject into annotated ValidatingWebhookConfigurations.")
	fs.BoolVar(&c.EnableInjectableConfig.MutatingWebhookConfigurations, "enable-mutatingwebhookconfigurations-injectable", c.EnableInjectableConfig.MutatingWebhookConfigurations, "Inject into annotated MutatingWebhookConfigurations.")
	fs.BoolVar(&c.EnableInjectableConfig.CustomResourceDefinitions, "enable-customresourcedefinitions-injectable", c.EnableInjectableConfig.CustomResourceDefinitions, "Inject into annotated CustomResourceDefinitions (conversion webhooks).")
	fs.BoolVar(&c.EnableInjectableConfig.APIServices, "enable-apiservices-injectable", c.EnableInjectableConfig.APIServices, "Inject into annotated APIServices.")

	fs.BoolVar(&c.EnablePprof, "enable-profiling", c.EnablePprof, "Serve Go pprof on --profiler-address.")
	fs.StringVar(&c.PprofAddress, "profiler-address", c.PprofAddress, "host:port of the pprof server.")
	fs.Var(cliflag.NewMapStringBool(&c.FeatureGates), "feature-gates", "key=value pairs of feature gates. Known: "+strings.Join(utilfeature.DefaultFeatureGate.KnownFeatures(), "; "))
	logf.AddFlags(&c.Logging, fs)

	fs.StringVar(&c.MetricsListenAddress, "metrics-listen-address", c.MetricsListenAddress, "host:port of the Prometheus metrics server; '0' disables it.")
	fs.StringVar(&c.MetricsTLSConfig.Filesystem.CertFile, "metrics-tls-cert-file", c.MetricsTLSConfig.Filesystem.CertFile, "Certificate file for a TLS metrics server.")
	fs.StringVar(&c.MetricsTLSConfig.Filesystem.KeyFile, "metrics-tls-private-key-file", c.MetricsTLSConfig.Filesystem.KeyFile, "Key file for a TLS metrics server.")
	fs.DurationVar(&c.MetricsTLSConfig.Dynamic.LeafDuration, "metrics-dynamic-serving-leaf-duration", c.MetricsTLSConfig.Dynamic.LeafDuration, "Lifetime of dynamically issued metrics serving certificates.")
	fs.StringVar(&c.MetricsTLSConfig.Dynamic.SecretNamespace, "metrics-dynamic-serving-ca-secret-namespace", c.MetricsTLSConfig.Dynamic.SecretNamespace, "Namespace of the Secret with the metrics serving CA.")
	fs.StringVar(&c.MetricsTLSConfig.Dynamic.SecretName, "metrics-dynamic-serving-ca-secret-name", c.MetricsTLSConfig.Dynamic.SecretName, "Name of the Secret with the metrics serving CA.")
	fs.StringSliceVar(&c.MetricsTLSConfig.Dynamic.DNSNames, "metrics-dynamic-serving-dns-names", c.MetricsTLSConfig.Dynamic.DNSNames, "DNS names of the dynamic metrics serving certificate.")
	fs.StringSliceVar(&c.MetricsTLSConfig.CipherSuites, "metrics-tls-cipher-suites", c.MetricsTLSConfig.CipherSuites, "TLS cipher suites of the metrics server. Possible: "+strings.Join(cliflag.TLSCipherPossibleValues(), ","))
	fs.StringVar(&c.MetricsTLSConfig.MinTLSVersion, "metrics-tls-min-version", c.MetricsTLSConfig.MinTLSVersion, "Minimum TLS version of the metrics server. Possible: "+strings.Join(cliflag.TLSPossibleVersions(), ", "))
}

func describe(c *config.CAInjectorConfiguration) string {
	return fmt.Sprintf("leader-elect=%t\nleader-election-namespace=%s\nnamespace=%s\ncertificates-data-source=%t\ninjectables=validating:%t,mutating:%t,crds:%t,apiservices:%t\nmetrics=%s\n",
		c.LeaderElectionConfig.Enabled, c.LeaderElectionConfig.Namespace, c.Namespace, c.EnableDataSourceConfig.Certificates,
		c.EnableInjectableConfig.ValidatingWebhookConfigurations, c.EnableInjectableConfig.MutatingWebhookConfigurations,
		c.EnableInjectableConfig.CustomResourceDefinitions, c.EnableInjectableConfig.APIServices, c.MetricsListenAddress)
}

func run(ctx context.Context, c *config.CAInjectorConfiguration) error {
	if err := launcher.ApplyLogging(&c.Logging); err != nil {
		return err
	}
	if err := launcher.ApplyFeatureGates(c.FeatureGates); err != nil {
		return err
	}
	log := logf.Log.WithName("cainjector")
	ctx = logf.NewContext(ctx, log)
	log.Info("starting cert-manager cainjector (mtls-demo stand-in for the upstream binary)", "version", launcher.ModuleVersion())

	restCfg, err := kube.BuildClientConfig("", c.KubeConfig)
	if err != nil {
		return err
	}
	restCfg = util.RestConfigWithUserAgent(restCfg, "cainjector")

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, cmapi.AddToScheme, apiextv1.AddToScheme, apiregv1.AddToScheme, admissionv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return err
		}
	}

	cacheOpts := cache.Options{}
	if c.Namespace != "" {
		// Injectables are cluster-scoped; only the sources are namespaced.
		cacheOpts.DefaultNamespaces = map[string]cache.Config{c.Namespace: {}}
	}
	metricsOpts := metricsserver.Options{BindAddress: c.MetricsListenAddress}
	metricsSource := metricsCertificateSource(c.MetricsTLSConfig, restCfg)
	if metricsSource != nil {
		metricsOpts.SecureServing = true
		metricsOpts.TLSOpts = []func(*gotls.Config){func(t *gotls.Config) {
			t.GetCertificate = metricsSource.GetCertificate
		}}
	}
	var pprofAddr string
	if c.EnablePprof {
		pprofAddr = c.PprofAddress
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		LeaderElection:                c.LeaderElectionConfig.Enabled,
		LeaderElectionNamespace:       c.LeaderElectionConfig.Namespace,
		LeaderElectionID:              leaseName,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &c.LeaderElectionConfig.LeaseDuration,
		RenewDeadline:                 &c.LeaderElectionConfig.RenewDeadline,
		RetryPeriod:                   &c.LeaderElectionConfig.RetryPeriod,
		Metrics:                       metricsOpts,
		PprofBindAddress:              pprofAddr,
		Client: client.Options{Cache: &client.CacheOptions{
			// Secrets are read straight from the API server and watched
			// metadata-only (see RegisterAllInjectors), so that the
			// cainjector never caches every Secret of the cluster.
			DisableFor: []client.Object{&corev1.Secret{}},
		}},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if metricsSource != nil {
		if err := mgr.Add(manager.RunnableFunc(metricsSource.Start)); err != nil {
			return err
		}
	}

	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		Namespace:                    c.Namespace,
		EnableCertificatesDataSource: c.EnableDataSourceConfig.Certificates,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   c.EnableInjectableConfig.MutatingWebhookConfigurations,
			cainjector.ValidatingWebhookConfigurationName: c.EnableInjectableConfig.ValidatingWebhookConfigurations,
			cainjector.APIServiceName:                     c.EnableInjectableConfig.APIServices,
			cainjector.CustomResourceDefinitionName:       c.EnableInjectableConfig.CustomResourceDefinitions,
		},
	}); err != nil {
		return fmt.Errorf("registering injectors: %w", err)
	}
	return mgr.Start(ctx)
}

// metricsCertificateSource is where a TLS metrics server gets its
// certificate: files, or a leaf signed by a CA kept in a Secret.
func metricsCertificateSource(t shared.TLSConfig, restCfg *rest.Config) tls.CertificateSource {
	switch {
	case t.FilesystemConfigProvided():
		return &tls.FileCertificateSource{CertPath: t.Filesystem.CertFile, KeyPath: t.Filesystem.KeyFile}
	case t.DynamicConfigProvided():
		return &tls.DynamicSource{
			DNSNames: t.Dynamic.DNSNames,
			Authority: &authority.DynamicAuthority{
				SecretNamespace: t.Dynamic.SecretNamespace,
				SecretName:      t.Dynamic.SecretName,
				SecretLabels:    map[string]string{"app.kubernetes.io/managed-by": "cert-manager"},
				LeafDuration:    t.Dynamic.LeafDuration,
				RESTConfig:      restCfg,
			},
		}
	}
	return nil
}
