package main

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"

	config "github.com/cert-manager/cert-manager/internal/apis/config/controller"
	"github.com/cert-manager/cert-manager/internal/controller/feature"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"

	// cert-manager's controllers register themselves with
	// controllerpkg.Register in init(): importing one is what builds it in.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/gateways"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificatesigningrequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificatesigningrequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"

	// The issuers controllers set an Issuer Ready through its issuer
	// implementation; without these they loop on "issuer 'ca' not
	// registered".
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// The controller names of cert-manager v1.19.2
// (internal/apis/config/controller/v1alpha1: AllControllers,
// DefaultEnabledControllers, ExperimentalCertificateSigningRequestControllers,
// ClusterScopedControllers).
var (
	allControllers = []string{
		"issuers", "clusterissuers", "certificates-metrics", "ingress-shim", "gateway-shim",
		"orders", "challenges",
		"certificaterequests-issuer-acme", "certificaterequests-approver", "certificaterequests-issuer-ca",
		"certificaterequests-issuer-selfsigned", "certificaterequests-issuer-vault", "certificaterequests-issuer-venafi",
		"certificates-trigger", "certificates-issuing", "certificates-key-manager", "certificates-request-manager",
		"certificates-readiness", "certificates-revision-manager",
		"certificatesigningrequests-issuer-acme", "certificatesigningrequests-issuer-ca",
		"certificatesigningrequests-issuer-selfsigned", "certificatesigningrequests-issuer-venafi",
		"certificatesigningrequests-issuer-vault",
	}
	defaultEnabledControllers = []string{
		"issuers", "clusterissuers", "certificates-metrics", "ingress-shim",
		"orders", "challenges",
		"certificaterequests-issuer-acme", "certificaterequests-approver", "certificaterequests-issuer-ca",
		"certificaterequests-issuer-selfsigned", "certificaterequests-issuer-vault", "certificaterequests-issuer-venafi",
		"certificates-trigger", "certificates-issuing", "certificates-key-manager", "certificates-request-manager",
		"certificates-readiness", "certificates-revision-manager",
	}
	experimentalCSRControllers = []string{
		"certificatesigningrequests-issuer-acme", "certificatesigningrequests-issuer-ca",
		"certificatesigningrequests-issuer-selfsigned", "certificatesigningrequests-issuer-venafi",
		"certificatesigningrequests-issuer-vault",
	}
	clusterScopedControllers = []string{
		"clusterissuers",
		"certificatesigningrequests-issuer-acme", "certificatesigningrequests-issuer-ca",
		"certificatesigningrequests-issuer-selfsigned", "certificatesigningrequests-issuer-venafi",
		"certificatesigningrequests-issuer-vault",
	}
)

// NotBuiltIn are cert-manager controllers this stand-in leaves out: the
// ACME ones (orders, challenges and the ACME request issuers pull in every
// DNS-01 provider's cloud SDK) and Vault and Venafi (their client
// libraries). Nothing in this project issues through them.
func notBuiltIn() sets.Set[string] {
	known := controllerpkg.Known()
	out := sets.New[string]()
	for _, n := range allControllers {
		if _, ok := known[n]; !ok {
			out.Insert(n)
		}
	}
	return out
}

// enabledControllers resolves --controllers as cert-manager does ('*' is
// the default set, '-name' removes, a namespace drops the cluster-scoped
// ones, feature gates add the experimental ones), then splits the result
// into the controllers to run and the enabled ones not built in. Naming a
// controller that is not built in explicitly is an error: the user asked
// for something this binary cannot do.
func enabledControllers(c *config.ControllerConfiguration) (run, skipped []string, err error) {
	enabled := sets.New[string]()
	var disabled, explicit []string
	for _, n := range c.Controllers {
		switch {
		case n == "*":
			enabled.Insert(defaultEnabledControllers...)
		case strings.HasPrefix(n, "-"):
			disabled = append(disabled, strings.TrimPrefix(n, "-"))
		default:
			enabled.Insert(n)
			explicit = append(explicit, n)
		}
	}
	if len(disabled) > 0 && enabled.Len() == 0 {
		enabled.Insert(defaultEnabledControllers...)
	}
	if utilfeature.DefaultFeatureGate.Enabled(feature.ExperimentalCertificateSigningRequestControllers) {
		enabled.Insert(experimentalCSRControllers...)
	}
	if utilfeature.DefaultFeatureGate.Enabled(feature.ExperimentalGatewayAPISupport) && c.EnableGatewayAPI {
		enabled.Insert("gateway-shim")
	}
	if c.Namespace != "" {
		enabled.Delete(clusterScopedControllers...)
	}
	enabled.Delete(disabled...)

	missing := notBuiltIn()
	for _, n := range explicit {
		if missing.Has(n) && enabled.Has(n) {
			return nil, nil, fmt.Errorf("controller %q is not built into this cert-manager stand-in (built in: %s)", n, strings.Join(sets.List(sets.KeySet(controllerpkg.Known())), ", "))
		}
	}
	for _, n := range sets.List(enabled) {
		if missing.Has(n) {
			skipped = append(skipped, n)
		} else {
			run = append(run, n)
		}
	}
	return run, skipped, nil
}
