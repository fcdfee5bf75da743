package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	cliflag "k8s.io/component-base/cli/flag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/cert-manager/cert-manager/mtls-demo-launchers/internal/launcher"

	config "github.com/cert-manager/cert-manager/internal/apis/config/controller"
	"github.com/cert-manager/cert-manager/internal/apis/config/shared"
	sharedvalidation "github.com/cert-manager/cert-manager/internal/apis/config/shared/validation"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	configv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/controller/v1alpha1"
	sharedv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/shared/v1alpha1"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
)

// The controller's configuration is cert-manager's own internal
// ControllerConfiguration type. Its defaults are written out here rather
// than taken from internal/apis/config/controller/v1alpha1, because that
// package imports every controller cert-manager has, ACME's DNS providers
// (AWS, Azure, Google Cloud SDKs) included, and this stand-in builds only the
// controllers listed in controllers.go. The values are v1.19.2's.
func newConfiguration() (*config.ControllerConfiguration, error) {
	c := &config.ControllerConfiguration{
		KubernetesAPIQPS:                20,
		KubernetesAPIBurst:              50,
		ClusterResourceNamespace:        "kube-system",
		Controllers:                     []string{"*"},
		ClusterIssuerAmbientCredentials: true,
		CopiedAnnotationPrefixes:        []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
		NumberOfConcurrentWorkers:       5,
		MaxConcurrentChallenges:         60,
		MetricsListenAddress:            "0.0.0.0:9402",
		HealthzListenAddress:            "0.0.0.0:9403",
		PprofAddress:                    "localhost:6060",
		LeaderElectionConfig: config.LeaderElectionConfig{
			LeaderElectionConfig: shared.LeaderElectionConfig{
				Enabled:       true,
				Namespace:     "kube-system",
				LeaseDuration: 60 * time.Second,
				RenewDeadline: 40 * time.Second,
				RetryPeriod:   15 * time.Second,
			},
			HealthzTimeout: 20 * time.Second,
		},
		IngressShimConfig: config.IngressShimConfig{
			DefaultIssuerKind:                 "Issuer",
			DefaultIssuerGroup:                cmapi.SchemeGroupVersion.Group,
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
			ExtraCertificateAnnotations:       []string{},
		},
		ACMEHTTP01Config: config.ACMEHTTP01Config{
			SolverImage:                 "quay.io/jetstack/cert-manager-acmesolver:" + util.AppVersion,
			SolverResourceRequestCPU:    "10m",
			SolverResourceRequestMemory: "64Mi",
			SolverResourceLimitsCPU:     "100m",
			SolverResourceLimitsMemory:  "64Mi",
			SolverRunAsNonRoot:          true,
			SolverNameservers:           []string{},
		},
		ACMEDNS01Config: config.ACMEDNS01Config{
			RecursiveNameservers: []string{},
			CheckRetryPeriod:     10 * time.Second,
		},
		MetricsTLSConfig: shared.TLSConfig{Dynamic: shared.DynamicServingConfig{LeafDuration: 7 * 24 * time.Hour}},
	}
	logsapi.SetRecommendedLoggingConfiguration(&c.Logging)
	return c, nil
}

// bindFlags registers the flags of cert-manager's controller (v1.19.2
// names, types and meaning) on fs.
func bindFlags(fs *pflag.FlagSet, c *config.ControllerConfiguration) {
	fs.StringVar(&c.APIServerHost, "master", c.APIServerHost, "API server address (default: in-cluster or kubeconfig).")
	fs.StringVar(&c.KubeConfig, "kubeconfig", c.KubeConfig, "Path to a kubeconfig; only needed out of cluster.")
	fs.Float32Var(&c.KubernetesAPIQPS, "kube-api-qps", c.KubernetesAPIQPS, "Maximum queries per second to the API server.")
	fs.IntVar(&c.KubernetesAPIBurst, "kube-api-burst", c.KubernetesAPIBurst, "Maximum burst of queries to the API server.")
	fs.StringVar(&c.ClusterResourceNamespace, "cluster-resource-namespace", c.ClusterResourceNamespace, "Namespace holding the Secrets of cluster-scoped resources such as ClusterIssuers.")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "Watch only this namespace (disables the cluster-scoped controllers); empty watches all.")

	fs.BoolVar(&c.LeaderElectionConfig.Enabled, "leader-elect", c.LeaderElectionConfig.Enabled, "Run the controllers only while holding the leader election lease.")
	fs.StringVar(&c.LeaderElectionConfig.Namespace, "leader-election-namespace", c.LeaderElectionConfig.Namespace, "Namespace of the leader election Lease.")
	fs.DurationVar(&c.LeaderElectionConfig.LeaseDuration, "leader-election-lease-duration", c.LeaderElectionConfig.LeaseDuration, "How long non-leaders wait after a renewal before trying to take the lease.")
	fs.DurationVar(&c.LeaderElectionConfig.RenewDeadline, "leader-election-renew-deadline", c.LeaderElectionConfig.RenewDeadline, "How long the leader keeps retrying to renew before it gives up leading.")
	fs.DurationVar(&c.LeaderElectionConfig.RetryPeriod, "leader-election-retry-period", c.LeaderElectionConfig.RetryPeriod, "Interval between attempts to acquire or renew the lease.")

	fs.StringSliceVar(&c.Controllers, "controllers", c.Controllers, "Controllers to run: '*' for the defaults, 'foo' to add one, '-foo' to remove one. All controllers: "+strings.Join(allControllers, ", "))

	fs.StringVar(&c.ACMEHTTP01Config.SolverImage, "acme-http01-solver-image", c.ACMEHTTP01Config.SolverImage, "Image of the ACME HTTP-01 solver pods.")
	fs.StringVar(&c.ACMEHTTP01Config.SolverResourceRequestCPU, "acme-http01-solver-resource-request-cpu", c.ACMEHTTP01Config.SolverResourceRequestCPU, "CPU request of ACME HTTP-01 solver pods.")
	fs.StringVar(&c.ACMEHTTP01Config.SolverResourceRequestMemory, "acme-http01-solver-resource-request-memory", c.ACMEHTTP01Config.SolverResourceRequestMemory, "Memory request of ACME HTTP-01 solver pods.")
	fs.StringVar(&c.ACMEHTTP01Config.SolverResourceLimitsCPU, "acme-http01-solver-resource-limits-cpu", c.ACMEHTTP01Config.SolverResourceLimitsCPU, "CPU limit of ACME HTTP-01 solver pods.")
	fs.StringVar(&c.ACMEHTTP01Config.SolverResourceLimitsMemory, "acme-http01-solver-resource-limits-memory", c.ACMEHTTP01Config.SolverResourceLimitsMemory, "Memory limit of ACME HTTP-01 solver pods.")
	fs.BoolVar(&c.ACMEHTTP01Config.SolverRunAsNonRoot, "acme-http01-solver-run-as-non-root", c.ACMEHTTP01Config.SolverRunAsNonRoot, "Run ACME HTTP-01 solver pods as non-root.")
	fs.StringSliceVar(&c.ACMEHTTP01Config.SolverNameservers, "acme-http01-solver-nameservers", c.ACMEHTTP01Config.SolverNameservers, "host:port DNS servers for ACME HTTP-01 self checks.")

	fs.BoolVar(&c.ClusterIssuerAmbientCredentials, "cluster-issuer-ambient-credentials", c.ClusterIssuerAmbientCredentials, "Let ClusterIssuers use ambient credentials (metadata services, environment).")
	fs.BoolVar(&c.IssuerAmbientCredentials, "issuer-ambient-credentials", c.IssuerAmbientCredentials, "Let Issuers use ambient credentials (metadata services, environment).")

	fs.StringSliceVar(&c.IngressShimConfig.DefaultAutoCertificateAnnotations, "auto-certificate-annotations", c.IngressShimConfig.DefaultAutoCertificateAnnotations, "Annotations that make ingress-shim create a Certificate for an Ingress.")
	fs.StringSliceVar(&c.IngressShimConfig.ExtraCertificateAnnotations, "extra-certificate-annotations", []string{}, "Extra annotations ingress-shim copies onto the Certificates it creates.")
	fs.StringVar(&c.IngressShimConfig.DefaultIssuerName, "default-issuer-name", c.IngressShimConfig.DefaultIssuerName, "Issuer name ingress-shim uses when an Ingress names none.")
	fs.StringVar(&c.IngressShimConfig.DefaultIssuerKind, "default-issuer-kind", c.IngressShimConfig.DefaultIssuerKind, "Issuer kind ingress-shim uses when an Ingress names none.")
	fs.StringVar(&c.IngressShimConfig.DefaultIssuerGroup, "default-issuer-group", c.IngressShimConfig.DefaultIssuerGroup, "Issuer group ingress-shim uses when an Ingress names none.")

	fs.StringSliceVar(&c.ACMEDNS01Config.RecursiveNameservers, "dns01-recursive-nameservers", c.ACMEDNS01Config.RecursiveNameservers, "ip:port or https:// DoH servers for ACME DNS-01 self checks.")
	fs.BoolVar(&c.ACMEDNS01Config.RecursiveNameserversOnly, "dns01-recursive-nameservers-only", c.ACMEDNS01Config.RecursiveNameserversOnly, "Query only the recursive nameservers in DNS-01 self checks.")
	fs.DurationVar(&c.ACMEDNS01Config.CheckRetryPeriod, "dns01-check-retry-period", c.ACMEDNS01Config.CheckRetryPeriod, "Wait between ACME DNS-01/HTTP-01 propagation checks.")

	fs.BoolVar(&c.EnableCertificateOwnerRef, "enable-certificate-owner-ref", c.EnableCertificateOwnerRef, "Make each Certificate the owner of its Secret, so deleting it deletes the Secret.")
	fs.BoolVar(&c.EnableGatewayAPI, "enable-gateway-api", c.EnableGatewayAPI, "Enable the Gateway API certificate-shim.")
	fs.StringSliceVar(&c.CopiedAnnotationPrefixes, "copied-annotation-prefixes", c.CopiedAnnotationPrefixes, "Annotation prefixes copied from Certificates to CertificateRequests; '-prefix' excludes.")
	fs.Var(cliflag.NewMapStringBool(&c.FeatureGates), "feature-gates", "key=value pairs of feature gates. Known: "+strings.Join(utilfeature.DefaultFeatureGate.KnownFeatures(), "; "))

	fs.IntVar(&c.NumberOfConcurrentWorkers, "concurrent-workers", c.NumberOfConcurrentWorkers, "Workers per controller.")
	fs.IntVar(&c.MaxConcurrentChallenges, "max-concurrent-challenges", c.MaxConcurrentChallenges, "Maximum ACME challenges processed at once.")

	fs.StringVar(&c.MetricsListenAddress, "metrics-listen-address", c.MetricsListenAddress, "host:port of the Prometheus metrics server; '0' disables it.")
	fs.BoolVar(&c.EnablePprof, "enable-profiling", c.EnablePprof, "Serve Go pprof on --profiler-address.")
	fs.StringVar(&c.PprofAddress, "profiler-address", c.PprofAddress, "host:port of the pprof server.")
	fs.StringVar(&c.MetricsTLSConfig.Filesystem.CertFile, "metrics-tls-cert-file", c.MetricsTLSConfig.Filesystem.CertFile, "Certificate file for a TLS metrics server.")
	fs.StringVar(&c.MetricsTLSConfig.Filesystem.KeyFile, "metrics-tls-private-key-file", c.MetricsTLSConfig.Filesystem.KeyFile, "Key file for a TLS metrics server.")
	fs.DurationVar(&c.MetricsTLSConfig.Dynamic.LeafDuration, "metrics-dynamic-serving-leaf-duration", c.MetricsTLSConfig.Dynamic.LeafDuration, "Lifetime of dynamically issued metrics serving certificates.")
	fs.StringVar(&c.MetricsTLSConfig.Dynamic.SecretNamespace, "metrics-dynamic-serving-ca-secret-namespace", c.MetricsTLSConfig.Dynamic.SecretNamespace, "Namespace of the Secret with the metrics serving CA.")
	fs.StringVar(&c.MetricsTLSConfig.Dynamic.SecretName, "metrics-dynamic-serving-ca-secret-name", c.MetricsTLSConfig.Dynamic.SecretName, "Name of the Secret with the metrics serving CA.")
	fs.StringSliceVar(&c.MetricsTLSConfig.Dynamic.DNSNames, "metrics-dynamic-serving-dns-names", c.MetricsTLSConfig.Dynamic.DNSNames, "DNS names of the dynamic metrics serving certificate.")
	fs.StringSliceVar(&c.MetricsTLSConfig.CipherSuites, "metrics-tls-cipher-suites", c.MetricsTLSConfig.CipherSuites, "TLS cipher suites of the metrics server. Possible: "+strings.Join(cliflag.TLSCipherPossibleValues(), ","))
	fs.StringVar(&c.MetricsTLSConfig.MinTLSVersion, "metrics-tls-min-version", c.MetricsTLSConfig.MinTLSVersion, "Minimum TLS version of the metrics server. Possible: "+strings.Join(cliflag.TLSPossibleVersions(), ", "))

	// Hidden in cert-manager too: the liveness server the chart's probe hits.
	fs.StringVar(&c.HealthzListenAddress, "internal-healthz-listen-address", c.HealthzListenAddress, "host:port of the /livez server.")
	_ = fs.MarkHidden("internal-healthz-listen-address")
	fs.DurationVar(&c.LeaderElectionConfig.HealthzTimeout, "internal-healthz-leader-election-timeout", c.LeaderElectionConfig.HealthzTimeout, "How long after a lease expires /livez still reports healthy.")
	_ = fs.MarkHidden("internal-healthz-leader-election-timeout")

	logf.AddFlags(&c.Logging, fs)
}

// loadConfigFile applies a controller.config.cert-manager.io/v1alpha1
// ControllerConfiguration file (what the chart mounts when its `config`
// value is set) onto c. Decoding is strict: an unknown field is an error,
// as with cert-manager's strict codec. Only the fields the file sets change.
func loadConfigFile(path string, c *config.ControllerConfiguration) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return fmt.Errorf("empty file")
	}
	var f configv1alpha1.ControllerConfiguration
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return err
	}
	if gv := configv1alpha1.SchemeGroupVersion.String(); (f.APIVersion != "" && f.APIVersion != gv) || (f.Kind != "" && f.Kind != "ControllerConfiguration") {
		return fmt.Errorf("want apiVersion %s kind ControllerConfiguration, got %s %s", gv, f.APIVersion, f.Kind)
	}
	str := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	strs := func(dst *[]string, v []string) {
		if len(v) > 0 {
			*dst = v
		}
	}
	boolean := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	dur := func(dst *time.Duration, v *sharedv1alpha1.Duration) {
		if !v.IsZero() {
			*dst = v.Duration.Duration
		}
	}
	str(&c.KubeConfig, f.KubeConfig)
	str(&c.APIServerHost, f.APIServerHost)
	if f.KubernetesAPIQPS != nil {
		c.KubernetesAPIQPS = *f.KubernetesAPIQPS
	}
	if f.KubernetesAPIBurst != nil {
		c.KubernetesAPIBurst = int(*f.KubernetesAPIBurst)
	}
	str(&c.Namespace, f.Namespace)
	str(&c.ClusterResourceNamespace, f.ClusterResourceNamespace)
	le := &c.LeaderElectionConfig
	boolean(&le.Enabled, f.LeaderElectionConfig.Enabled)
	str(&le.Namespace, f.LeaderElectionConfig.Namespace)
	dur(&le.LeaseDuration, f.LeaderElectionConfig.LeaseDuration)
	dur(&le.RenewDeadline, f.LeaderElectionConfig.RenewDeadline)
	dur(&le.RetryPeriod, f.LeaderElectionConfig.RetryPeriod)
	dur(&le.HealthzTimeout, f.LeaderElectionConfig.HealthzTimeout)
	strs(&c.Controllers, f.Controllers)
	boolean(&c.IssuerAmbientCredentials, f.IssuerAmbientCredentials)
	boolean(&c.ClusterIssuerAmbientCredentials, f.ClusterIssuerAmbientCredentials)
	boolean(&c.EnableCertificateOwnerRef, f.EnableCertificateOwnerRef)
	boolean(&c.EnableGatewayAPI, f.EnableGatewayAPI)
	strs(&c.CopiedAnnotationPrefixes, f.CopiedAnnotationPrefixes)
	if f.NumberOfConcurrentWorkers != nil {
		c.NumberOfConcurrentWorkers = int(*f.NumberOfConcurrentWorkers)
	}
	if f.MaxConcurrentChallenges != nil {
		c.MaxConcurrentChallenges = int(*f.MaxConcurrentChallenges)
	}
	str(&c.MetricsListenAddress, f.MetricsListenAddress)
	applyTLS(&c.MetricsTLSConfig, f.MetricsTLSConfig)
	str(&c.HealthzListenAddress, f.HealthzListenAddress)
	boolean(&c.EnablePprof, f.EnablePprof)
	str(&c.PprofAddress, f.PprofAddress)
	if f.Logging.Format != "" {
		c.Logging.Format = f.Logging.Format
	}
	if f.Logging.Verbosity != 0 {
		c.Logging.Verbosity = f.Logging.Verbosity
	}
	if len(f.Logging.VModule) > 0 {
		c.Logging.VModule = f.Logging.VModule
	}
	if len(f.FeatureGates) > 0 {
		c.FeatureGates = f.FeatureGates
	}
	is := &c.IngressShimConfig
	str(&is.DefaultIssuerName, f.IngressShimConfig.DefaultIssuerName)
	str(&is.DefaultIssuerKind, f.IngressShimConfig.DefaultIssuerKind)
	str(&is.DefaultIssuerGroup, f.IngressShimConfig.DefaultIssuerGroup)
	strs(&is.DefaultAutoCertificateAnnotations, f.IngressShimConfig.DefaultAutoCertificateAnnotations)
	strs(&is.ExtraCertificateAnnotations, f.IngressShimConfig.ExtraCertificateAnnotations)
	h := &c.ACMEHTTP01Config
	str(&h.SolverImage, f.ACMEHTTP01Config.SolverImage)
	str(&h.SolverResourceRequestCPU, f.ACMEHTTP01Config.SolverResourceRequestCPU)
	str(&h.SolverResourceRequestMemory, f.ACMEHTTP01Config.SolverResourceRequestMemory)
	str(&h.SolverResourceLimitsCPU, f.ACMEHTTP01Config.SolverResourceLimitsCPU)
	str(&h.SolverResourceLimitsMemory, f.ACMEHTTP01Config.SolverResourceLimitsMemory)
	boolean(&h.SolverRunAsNonRoot, f.ACMEHTTP01Config.SolverRunAsNonRoot)
	strs(&h.SolverNameservers, f.ACMEHTTP01Config.SolverNameservers)
	d := &c.ACMEDNS01Config
	strs(&d.RecursiveNameservers, f.ACMEDNS01Config.RecursiveNameservers)
	boolean(&d.RecursiveNameserversOnly, f.ACMEDNS01Config.RecursiveNameserversOnly)
	dur(&d.CheckRetryPeriod, f.ACMEDNS01Config.CheckRetryPeriod)
	return nil
}

func applyTLS(dst *shared.TLSConfig, src sharedv1alpha1.TLSConfig) {
	if len(src.CipherSuites) > 0 {
		dst.CipherSuites = src.CipherSuites
	}
	if src.MinTLSVersion != "" {
		dst.MinTLSVersion = src.MinTLSVersion
	}
	if src.Filesystem.CertFile != "" {
		dst.Filesystem.CertFile = src.Filesystem.CertFile
	}
	if src.Filesystem.KeyFile != "" {
		dst.Filesystem.KeyFile = src.Filesystem.KeyFile
	}
	if src.Dynamic.SecretNamespace != "" {
		dst.Dynamic.SecretNamespace = src.Dynamic.SecretNamespace
	}
	if src.Dynamic.SecretName != "" {
		dst.Dynamic.SecretName = src.Dynamic.SecretName
	}
	if len(src.Dynamic.DNSNames) > 0 {
		dst.Dynamic.DNSNames = src.Dynamic.DNSNames
	}
	if !src.Dynamic.LeafDuration.IsZero() {
		dst.Dynamic.LeafDuration = src.Dynamic.LeafDuration.Duration.Duration
	}
}

// validate applies the checks of cert-manager's controller configuration
// validation that do not need its (heavy) defaults package: the shared
// TLS and leader election checks, known controller names, positive
// numbers and parseable ACME solver resources.
func validate(c *config.ControllerConfiguration) error {
	var errs []string
	for _, e := range sharedvalidation.ValidateTLSConfig(&c.MetricsTLSConfig, nil) {
		errs = append(errs, e.Error())
	}
	for _, e := range sharedvalidation.ValidateLeaderElectionConfig(&c.LeaderElectionConfig.LeaderElectionConfig, nil) {
		errs = append(errs, e.Error())
	}
	if c.LeaderElectionConfig.HealthzTimeout <= 0 {
		errs = append(errs, "internal-healthz-leader-election-timeout must be positive")
	}
	if c.KubernetesAPIBurst <= 0 {
		errs = append(errs, "kube-api-burst must be positive")
	}
	if c.KubernetesAPIQPS <= 0 {
		errs = append(errs, "kube-api-qps must be positive")
	}
	if float32(c.KubernetesAPIBurst) < c.KubernetesAPIQPS {
		errs = append(errs, "kube-api-burst must be at least kube-api-qps")
	}
	if c.NumberOfConcurrentWorkers <= 0 {
		errs = append(errs, "concurrent-workers must be positive")
	}
	if c.MaxConcurrentChallenges <= 0 {
		errs = append(errs, "max-concurrent-challenges must be positive")
	}
	known := sets.New(allControllers...)
	for _, n := range c.Controllers {
		n = strings.TrimPrefix(n, "-")
		if n != "*" && !known.Has(n) {
			errs = append(errs, fmt.Sprintf("controllers: %q is not a cert-manager controller", n))
		}
	}
	for flag, q := range map[string]string{
		"acme-http01-solver-resource-request-cpu":    c.ACMEHTTP01Config.SolverResourceRequestCPU,
		"acme-http01-solver-resource-request-memory": c.ACMEHTTP01Config.SolverResourceRequestMemory,
		"acme-http01-solver-resource-limits-cpu":     c.ACMEHTTP01Config.SolverResourceLimitsCPU,
		"acme-http01-solver-resource-limits-memory":  c.ACMEHTTP01Config.SolverResourceLimitsMemory,
	} {
		if _, err := resource.ParseQuantity(q); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", flag, err))
		}
	}
	// Feature gates are process-wide: setting them here is what run does
	// first anyway, and the enabled controllers depend on them.
	if err := launcher.ApplyFeatureGates(c.FeatureGates); err != nil {
		errs = append(errs, err.Error())
	} else if _, _, err := enabledControllers(c); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
