// Package cli is the webhook binary: its flags, in one Options struct with
// defaults and validation, and its subcommands `serve` and `render`.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/csivalidate"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/pkg/policy"
	"github.com/mtls-demo/mtls-webhook/pkg/webhook"
)

// Default images of the reload-capable demo apps.
const (
	DefaultFrontendImage = "ghcr.io/mtls-demo/demo-frontend:0.1.0"
	DefaultBackendImage  = "ghcr.io/mtls-demo/demo-backend:0.1.0"
)

// InjectOptions are the flags shared by `serve` and `render`: everything
// that decides what a pod gets.
type InjectOptions struct {
	DefaultIssuer      string
	DefaultIssuerKind  string
	DefaultIssuerGroup string
	DefaultDuration    time.Duration
	DefaultRenewBefore time.Duration
	TrustDomain        string
	ClusterDomain      string
	FrontendImage      string
	BackendImage       string
	AllowedIssuers     string
	AllowAnyDNSNames   bool
}

// ServeOptions are the flags of `serve`.
type ServeOptions struct {
	InjectOptions
	Kubeconfig  string
	CertDir     string
	CertName    string
	KeyName     string
	Host        string
	Port        int
	HealthAddr  string
	MetricsAddr string
	IssuerCheck string
	LogLevel    string
}

// RenderOptions are the flags of `render`.
type RenderOptions struct {
	InjectOptions
	File         string
	ServicesFile string
	Namespace    string
}

func (o *InjectOptions) bind(fs *flag.FlagSet) {
	d := annotations.NewDefaults()
	fs.StringVar(&o.DefaultIssuer, "default-issuer", "", "issuer name for pods without "+annotations.Issuer+" (empty: the annotation is required)")
	fs.StringVar(&o.DefaultIssuerKind, "default-issuer-kind", d.Issuer.Kind, "issuer kind for pods without "+annotations.IssuerKind+": Issuer or ClusterIssuer")
	fs.StringVar(&o.DefaultIssuerGroup, "default-issuer-group", d.Issuer.Group, "issuer API group for pods without "+annotations.IssuerGroup)
	fs.DurationVar(&o.DefaultDuration, "default-duration", d.Duration, "certificate lifetime for pods without "+annotations.Duration)
	fs.DurationVar(&o.DefaultRenewBefore, "default-renew-before", d.RenewBefore, "renewal margin for pods without "+annotations.RenewBefore+" (a third of the duration when it does not fit)")
	fs.StringVar(&o.TrustDomain, "trust-domain", d.TrustDomain, "SPIFFE trust domain of the default URI SAN")
	fs.StringVar(&o.ClusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain for derived Service names")
	fs.StringVar(&o.FrontendImage, "frontend-image", DefaultFrontendImage, "image swapped in by "+annotations.App+": frontend")
	fs.StringVar(&o.BackendImage, "backend-image", DefaultBackendImage, "image swapped in by "+annotations.App+": backend")
	fs.StringVar(&o.AllowedIssuers, "allowed-issuers", "", "comma list of allowed issuers as Kind/name or Kind.group/name globs (empty: "+policy.DefaultAllowedIssuers+", any Issuer in the pod's namespace and no ClusterIssuer)")
	fs.BoolVar(&o.AllowAnyDNSNames, "allow-any-dns-names", false, "let pods request DNS names outside their own namespace")
}

func (o *ServeOptions) bind(fs *flag.FlagSet) {
	o.InjectOptions.bind(fs)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then in-cluster)")
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with the serving certificate; changes are picked up without restart")
	fs.StringVar(&o.CertName, "cert-name", "tls.crt", "serving certificate file in --cert-dir")
	fs.StringVar(&o.KeyName, "key-name", "tls.key", "serving key file in --cert-dir")
	fs.StringVar(&o.Host, "host", "", "address the HTTPS admission endpoint binds to (empty: all)")
	fs.IntVar(&o.Port, "port", 9443, "port of the HTTPS admission endpoint")
	fs.StringVar(&o.HealthAddr, "health-addr", ":8081", "address of /healthz and /readyz (0 disables)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", "address of the Prometheus /metrics endpoint (0 disables)")
	fs.StringVar(&o.IssuerCheck, "issuer-check", string(webhook.IssuerCheckWarn), "when a pod's issuer is missing or not Ready: warn, deny or off")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func (o *RenderOptions) bind(fs *flag.FlagSet) {
	o.InjectOptions.bind(fs)
	fs.StringVar(&o.File, "f", "", "YAML file to render, or - for standard input (required)")
	fs.StringVar(&o.ServicesFile, "services", "", "YAML file with Services used to derive DNS names (Services in the input are used too)")
	fs.StringVar(&o.Namespace, "namespace", "default", "namespace of documents that name none")
}

// Injector validates the options and builds the pipeline they describe.
func (o *InjectOptions) Injector() (*inject.Injector, error) {
	var errs []error
	if o.DefaultDuration < annotations.MinDuration {
		errs = append(errs, fmt.Errorf("--default-duration=%s: must be at least %s", o.DefaultDuration, annotations.MinDuration))
	}
	if o.DefaultRenewBefore <= 0 {
		errs = append(errs, fmt.Errorf("--default-renew-before=%s: must be positive", o.DefaultRenewBefore))
	}
	if o.DefaultIssuerKind == "" {
		errs = append(errs, errors.New("--default-issuer-kind: must not be empty (Issuer or ClusterIssuer)"))
	}
	if o.TrustDomain == "" || strings.ContainsAny(o.TrustDomain, "/:") {
		errs = append(errs, fmt.Errorf("--trust-domain=%q: must be a bare domain such as cluster.local", o.TrustDomain))
	}
	var patterns []string
	if o.AllowedIssuers != "" {
		patterns = strings.Split(o.AllowedIssuers, ",")
	}
	pol, err := policy.New(patterns, o.AllowAnyDNSNames, o.ClusterDomain)
	if err != nil {
		errs = append(errs, fmt.Errorf("--allowed-issuers: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	defaults := annotations.Defaults{
		Issuer:      annotations.IssuerRef{Name: o.DefaultIssuer, Kind: o.DefaultIssuerKind, Group: o.DefaultIssuerGroup},
		Duration:    o.DefaultDuration,
		RenewBefore: o.DefaultRenewBefore,
		TrustDomain: o.TrustDomain,
	}
	// A pod that sets nothing but the opt-in gets exactly these defaults:
	// if Parse refuses that pod, every such pod would be refused, with an
	// error on an annotation its author never wrote. Say so at start-up.
	if o.DefaultIssuer != "" {
		if _, _, el := annotations.Parse(map[string]string{annotations.Enable: "true"}, defaults); len(el) > 0 {
			for _, e := range el {
				errs = append(errs, fmt.Errorf("--default-issuer=%q --default-issuer-kind=%q --default-issuer-group=%q: every pod relying on them would be refused: %s",
					o.DefaultIssuer, o.DefaultIssuerKind, o.DefaultIssuerGroup, e.ErrorBody()))
			}
			return nil, errors.Join(errs...)
		}
	}
	return &inject.Injector{
		Defaults: defaults,
		Options:  mutate.Options{FrontendImage: o.FrontendImage, BackendImage: o.BackendImage, ClusterDomain: o.ClusterDomain},
		Policy:   pol,
		Checks:   csivalidate.NewMemo(1024),
	}, nil
}
