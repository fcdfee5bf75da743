// Package certmanager runs cert-manager's own controllers in-process: the
// Issuer/ClusterIssuer readiness controllers, the CertificateRequest
// approver, the CA and self-signed CertificateRequest issuers, and the
// certificates controllers that turn Certificate objects into Secrets.
package certmanager

import (
	"context"
	"fmt"
	"sync"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"

	// Controllers register themselves in init().
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"

	// Without the issuer implementations the issuers controllers loop on
	// "issuer 'ca' not registered" and no Issuer becomes Ready.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// Controllers are the cert-manager controllers the demo runs.
var Controllers = []string{
	"issuers",
	"clusterissuers",
	"certificaterequests-approver",
	"certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned",
	"certificates-trigger",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-issuing",
	"certificates-readiness",
	"certificates-revision-manager",
}

// ClusterResourceNamespace holds the Secrets of ClusterIssuers.
const ClusterResourceNamespace = "cert-manager"

// Run starts the controllers against the cluster of kubeconfig and returns
// a function that waits for them to stop after ctx is cancelled.
func Run(ctx context.Context, kubeconfig string) (wait func(), err error) {
	opts := controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   200,
		KubernetesAPIBurst: 400,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: ClusterResourceNamespace},
	}
	factory, err := controllerpkg.NewContextFactory(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("cert-manager context: %w", err)
	}
	var wg sync.WaitGroup
	known := controllerpkg.Known()
	ctrls := make([]controllerpkg.Interface, 0, len(Controllers))
	for _, name := range Controllers {
		ctor, ok := known[name]
		if !ok {
			return nil, fmt.Errorf("cert-manager controller %q is not registered", name)
		}
		c, err := ctor(factory)
		if err != nil {
			return nil, fmt.Errorf("cert-manager controller %s: %w", name, err)
		}
		ctrls = append(ctrls, c)
	}
	b, err := factory.Build()
	if err != nil {
		return nil, err
	}
	b.SharedInformerFactory.Start(ctx.Done())
	b.KubeSharedInformerFactory.Start(ctx.Done())
	for _, c := range ctrls {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(2, ctx) }()
	}
	return wg.Wait, nil
}
