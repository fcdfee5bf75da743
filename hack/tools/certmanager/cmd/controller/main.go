// Command controller is a stand-in for cert-manager's controller binary
// (quay.io/jetstack/cert-manager-controller), built from cert-manager
// v1.19.2's own controller packages.
//
// Why a stand-in: upstream's main lives in the nested module
// github.com/cert-manager/cert-manager/cmd/controller, which the Go module
// proxy here does not serve (404) and which the main module zip leaves out.
// This main accepts every flag of the upstream binary with the same names,
// types, defaults and meaning, so that cert-manager's Helm chart runs it
// unchanged, and it starts the controllers the same way (context factory,
// leader election on the "cert-manager-controller" Lease, the /livez server
// the chart's liveness probe calls on :9403, Prometheus metrics on :9402).
// What differs: the ACME, Vault and Venafi controllers are not built in (see
// controllers.go); enabling one explicitly is an error, and the ones the
// defaults enable are logged as skipped.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/cert-manager/cert-manager/mtls-demo-launchers/internal/launcher"

	config "github.com/cert-manager/cert-manager/internal/apis/config/controller"
	"github.com/cert-manager/cert-manager/internal/apis/config/shared"
	"github.com/cert-manager/cert-manager/internal/controller/feature"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/healthz"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/server"
	"github.com/cert-manager/cert-manager/pkg/server/tls"
	"github.com/cert-manager/cert-manager/pkg/server/tls/authority"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
	"github.com/cert-manager/cert-manager/pkg/util/profiling"
)

// leaseName is cert-manager's controller Lease (the chart's RBAC grants
// exactly this name in the leader election namespace).
const leaseName = "cert-manager-controller"

var spec = launcher.Spec[config.ControllerConfiguration]{
	Name:     "cert-manager-controller",
	New:      newConfiguration,
	Bind:     bindFlags,
	Load:     loadConfigFile,
	Validate: validate,
}

func main() {
	launcher.Main(spec, run, describe)
}

func describe(c *config.ControllerConfiguration) string {
	runs, skipped, err := enabledControllers(c)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	return fmt.Sprintf("cluster-resource-namespace=%s\nleader-elect=%t\nleader-election-namespace=%s\nhealthz=%s\nmetrics=%s\nacme-http01-solver-image=%s\ncontrollers=%s\nskipped=%s\n",
		c.ClusterResourceNamespace, c.LeaderElectionConfig.Enabled, c.LeaderElectionConfig.Namespace,
		c.HealthzListenAddress, c.MetricsListenAddress, c.ACMEHTTP01Config.SolverImage,
		strings.Join(runs, ","), strings.Join(skipped, ","))
}

func run(rootCtx context.Context, c *config.ControllerConfiguration) error {
	if err := launcher.ApplyLogging(&c.Logging); err != nil {
		return err
	}
	if err := launcher.ApplyFeatureGates(c.FeatureGates); err != nil {
		return err
	}
	log := logf.Log.WithName("controller")
	rootCtx = logf.NewContext(rootCtx, log)
	rootCtx, cancel := context.WithCancel(rootCtx)
	defer cancel()

	runs, skipped, err := enabledControllers(c)
	if err != nil {
		return err
	}
	log.Info("starting cert-manager controller (mtls-demo stand-in for the upstream binary)", "version", launcher.ModuleVersion(),
		"controllers", runs, "enabled-but-not-built-in", skipped)

	factory, err := newContextFactory(rootCtx, c)
	if err != nil {
		return err
	}
	base, err := factory.Build()
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(rootCtx)

	// cert-manager's Certificate and ACME Challenge collectors, as upstream's
	// main wires them (the library leaves that to the binary). Asking for
	// the listers registers their informers before the factories start.
	base.Metrics.SetupCertificateCollector(base.SharedInformerFactory.Certmanager().V1().Certificates().Lister())
	base.Metrics.SetupACMECollector(base.SharedInformerFactory.Acme().V1().Challenges().Lister())

	if c.MetricsListenAddress != "0" && c.MetricsListenAddress != "" {
		src := certificateSource(c.MetricsTLSConfig, base)
		if src != nil {
			g.Go(func() error { return ignoreCanceled(src.Start(gctx)) })
		}
		ln, err := server.Listen(gctx, "tcp", c.MetricsListenAddress,
			server.WithCertificateSource(src),
			server.WithTLSCipherSuites(c.MetricsTLSConfig.CipherSuites),
			server.WithTLSMinVersion(c.MetricsTLSConfig.MinTLSVersion))
		if err != nil {
			return fmt.Errorf("metrics listener %s: %w", c.MetricsListenAddress, err)
		}
		serveHTTP(gctx, g, base.Metrics.NewServer(ln), ln)
		log.Info("metrics server listening", "address", ln.Addr().String())
	}
	if c.EnablePprof {
		ln, err := net.Listen("tcp", c.PprofAddress)
		if err != nil {
			return fmt.Errorf("profiler listener %s: %w", c.PprofAddress, err)
		}
		mux := http.NewServeMux()
		profiling.Install(mux)
		serveHTTP(gctx, g, &http.Server{Handler: mux, ReadHeaderTimeout: 32 * time.Second}, ln)
	}

	healthLn, err := net.Listen("tcp", c.HealthzListenAddress)
	if err != nil {
		return fmt.Errorf("healthz listener %s: %w", c.HealthzListenAddress, err)
	}
	health := healthz.NewServer(c.LeaderElectionConfig.HealthzTimeout)
	g.Go(func() error { return ignoreCanceled(health.Start(gctx, healthLn)) })
	log.Info("healthz server listening", "address", healthLn.Addr().String())

	elected := make(chan struct{})
	if c.LeaderElectionConfig.Enabled {
		leCtx, err := factory.Build("leader-election")
		if err != nil {
			return err
		}
		g.Go(func() error {
			return leaderElect(gctx, c, leCtx, health.LeaderHealthzAdaptor, elected)
		})
	} else {
		close(elected)
	}

	select {
	case <-gctx.Done():
		return g.Wait()
	case <-elected:
	}

	known := controllerpkg.Known()
	for _, name := range runs {
		ctrl, err := known[name](factory)
		if err != nil {
			cancel()
			_ = g.Wait()
			return fmt.Errorf("controller %s: %w", name, err)
		}
		g.Go(func() error {
			log.V(logf.InfoLevel).Info("starting controller", "controller", name)
			return ctrl.Run(c.NumberOfConcurrentWorkers, gctx)
		})
	}
	base.SharedInformerFactory.Start(gctx.Done())
	base.KubeSharedInformerFactory.Start(gctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(gctx.Done())
	gateway := utilfeature.DefaultFeatureGate.Enabled(feature.ExperimentalGatewayAPISupport) && c.EnableGatewayAPI
	if gateway {
		base.GWShared.Start(gctx.Done())
	}

	err = g.Wait()
	if gateway {
		base.GWShared.Shutdown()
	}
	base.HTTP01ResourceMetadataInformersFactory.Shutdown()
	base.KubeSharedInformerFactory.Shutdown()
	base.SharedInformerFactory.Shutdown()
	if err != nil {
		return err
	}
	log.Info("control loops exited")
	return nil
}

func newContextFactory(ctx context.Context, c *config.ControllerConfiguration) (*controllerpkg.ContextFactory, error) {
	quantities := map[string]*resource.Quantity{}
	for name, v := range map[string]string{
		"request-cpu": c.ACMEHTTP01Config.SolverResourceRequestCPU, "request-memory": c.ACMEHTTP01Config.SolverResourceRequestMemory,
		"limits-cpu": c.ACMEHTTP01Config.SolverResourceLimitsCPU, "limits-memory": c.ACMEHTTP01Config.SolverResourceLimitsMemory,
	} {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("acme-http01-solver-resource-%s: %w", name, err)
		}
		quantities[name] = &q
	}
	return controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		APIServerHost:      c.APIServerHost,
		Kubeconfig:         c.KubeConfig,
		KubernetesAPIQPS:   c.KubernetesAPIQPS,
		KubernetesAPIBurst: c.KubernetesAPIBurst,
		Namespace:          c.Namespace,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace:        c.ClusterResourceNamespace,
			ClusterIssuerAmbientCredentials: c.ClusterIssuerAmbientCredentials,
			IssuerAmbientCredentials:        c.IssuerAmbientCredentials,
		},
		ACMEOptions: controllerpkg.ACMEOptions{
			HTTP01SolverImage:                 c.ACMEHTTP01Config.SolverImage,
			HTTP01SolverResourceRequestCPU:    *quantities["request-cpu"],
			HTTP01SolverResourceRequestMemory: *quantities["request-memory"],
			HTTP01SolverResourceLimitsCPU:     *quantities["limits-cpu"],
			HTTP01SolverResourceLimitsMemory:  *quantities["limits-memory"],
			ACMEHTTP01SolverRunAsNonRoot:      c.ACMEHTTP01Config.SolverRunAsNonRoot,
			HTTP01SolverNameservers:           c.ACMEHTTP01Config.SolverNameservers,
			DNS01CheckAuthoritative:           !c.ACMEDNS01Config.RecursiveNameserversOnly,
			DNS01Nameservers:                  c.ACMEDNS01Config.RecursiveNameservers,
			DNS01CheckRetryPeriod:             c.ACMEDNS01Config.CheckRetryPeriod,
		},
		IngressShimOptions: controllerpkg.IngressShimOptions{
			DefaultIssuerName:                 c.IngressShimConfig.DefaultIssuerName,
			DefaultIssuerKind:                 c.IngressShimConfig.DefaultIssuerKind,
			DefaultIssuerGroup:                c.IngressShimConfig.DefaultIssuerGroup,
			DefaultAutoCertificateAnnotations: c.IngressShimConfig.DefaultAutoCertificateAnnotations,
			ExtraCertificateAnnotations:       c.IngressShimConfig.ExtraCertificateAnnotations,
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			EnableOwnerRef:           c.EnableCertificateOwnerRef,
			CopiedAnnotationPrefixes: c.CopiedAnnotationPrefixes,
		},
		SchedulerOptions: controllerpkg.SchedulerOptions{MaxConcurrentChallenges: c.MaxConcurrentChallenges},
		ConfigOptions:    controllerpkg.ConfigOptions{EnableGatewayAPI: c.EnableGatewayAPI},
	})
}

// leaderElect holds the controller Lease; elected is closed once it is
// held. Losing the lease ends the process with an error, as upstream.
func leaderElect(ctx context.Context, c *config.ControllerConfiguration, cc *controllerpkg.Context, adaptor *leaderelection.HealthzAdaptor, elected chan struct{}) error {
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, c.LeaderElectionConfig.Namespace, leaseName,
		cc.Client.CoreV1(), cc.Client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: host + "-external-cert-manager-controller", EventRecorder: cc.Recorder})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	lost := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.LeaderElectionConfig.LeaseDuration,
		RenewDeadline:   c.LeaderElectionConfig.RenewDeadline,
		RetryPeriod:     c.LeaderElectionConfig.RetryPeriod,
		ReleaseOnCancel: true,
		WatchDog:        adaptor,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(elected) },
			OnStoppedLeading: func() { close(lost) },
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx)
	// Run returns when the context ends (a shutdown: the lease is released)
	// or when the lease was lost while running, which must end the process.
	if ctx.Err() != nil {
		return nil
	}
	select {
	case <-lost:
		return errors.New("leader election lost")
	default:
		return nil
	}
}

func certificateSource(t shared.TLSConfig, cc *controllerpkg.Context) tls.CertificateSource {
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
				RESTConfig:      cc.RESTConfig,
			},
		}
	}
	return nil
}

func serveHTTP(ctx context.Context, g *errgroup.Group, srv *http.Server, ln net.Listener) {
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown) //nolint:contextcheck // the parent is already done
	})
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
