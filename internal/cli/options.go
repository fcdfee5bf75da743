// Package cli is the webhook binary: its flags, in one Options struct with
// defaults and validation, and its subcommands `serve`, `render` and `check` (check.go).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	AllowedDNSNames    string
	AllowedURISANs     string
	AllowCommonName    bool
	Limits             annotations.Limits
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
	fs.BoolVar(&o.AllowAnyDNSNames, "allow-any-dns-names", false, "lift the DNS name rule: let pods request any DNS name (escape hatch; prefer --allowed-dns-names)")
	fs.StringVar(&o.AllowedDNSNames, "allowed-dns-names", "", "comma list of namespace=glob (or *=glob) granting DNS names beyond a pod's own namespace, such as shop=*.shop.example.com; * and ? stay within one label, ${POD_NAMESPACE} and ${SERVICE_ACCOUNT_NAME} allowed")
	fs.StringVar(&o.AllowedURISANs, "allowed-uri-sans", "", "comma list of URI globs a pod may add besides its own SPIFFE ID, such as urn:${POD_NAMESPACE}:* (empty: none; never another spiffe:// ID)")
	fs.BoolVar(&o.AllowCommonName, "allow-common-name", false, "let pods set "+annotations.CommonName+", which must then be one of the certificate's own DNS names or its SPIFFE ID")
	l := annotations.NewLimits()
	fs.IntVar(&o.Limits.MaxValueBytes, "max-annotation-bytes", l.MaxValueBytes, "longest value of any "+annotations.Prefix+" annotation, in bytes")
	fs.IntVar(&o.Limits.MaxDNSNames, "max-dns-names", l.MaxDNSNames, "most DNS names in one certificate, derived ones included")
	fs.IntVar(&o.Limits.MaxURISANs, "max-uri-sans", l.MaxURISANs, "most URI SANs in one certificate, the SPIFFE ID included")
	fs.DurationVar(&o.Limits.MinDuration, "min-duration", l.MinDuration, "shortest certificate lifetime a pod may ask for (at least 1m)")
	fs.DurationVar(&o.Limits.MaxDuration, "max-duration", l.MaxDuration, "longest certificate lifetime a pod may ask for")
	fs.IntVar(&o.Limits.MaxRSAKeySize, "max-rsa-key-size", l.MaxRSAKeySize, "largest RSA key a pod may ask for, in bits (2048 to 8192)")
	fs.DurationVar(&o.Limits.MinRenewInterval, "min-renew-interval", l.MinRenewInterval, "shortest time a certificate stays in use between renewals (duration minus renew-before): each renewal is a new key and certificate request per replica")
}

func (o *ServeOptions) bind(fs *flag.FlagSet) {
	o.InjectOptions.bind(fs)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then in-cluster)")
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with the serving certificate; changes are picked up without restart")
	fs.StringVar(&o.CertName, "cert-name", "tls.crt", "serving certificate file in --cert-dir")
	fs.StringVar(&o.KeyName, "key-name", "tls.key", "serving key file in --cert-dir")
	fs.StringVar(&o.Host, "host", "", "address the HTTPS admission endpoint binds to (empty: all)")
	fs.IntVar(&o.Port, "port", 10250, "port of the HTTPS admission endpoint (10250: the node port firewalled control planes such as GKE private clusters can reach)")
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

// InjectorFor parses the injection flags that serve and render share and
// builds the pipeline they describe, exactly as the binary would: tests use
// it to run cases under the flags an admin would set.
func InjectorFor(args []string) (*inject.Injector, error) {
	var o InjectOptions
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o.Injector()
}

// Injector validates the options and builds the pipeline they describe.
// It then runs that pipeline on a probe pod that relies on every default,
// and refuses flag sets that would refuse such a pod: they would refuse
// every pod of the cluster, each with an error on an annotation its author
// never wrote.
func (o *InjectOptions) Injector() (*inject.Injector, error) {
	var errs []error
	errs = append(errs, o.Limits.Validate()...)
	if o.DefaultDuration < o.Limits.MinDuration || o.DefaultDuration > o.Limits.MaxDuration {
		errs = append(errs, fmt.Errorf("--default-duration=%s: must be at least %s (--min-duration) and at most %s (--max-duration)",
			o.DefaultDuration, o.Limits.MinDuration, o.Limits.MaxDuration))
	}
	if o.DefaultRenewBefore <= 0 {
		errs = append(errs, fmt.Errorf("--default-renew-before=%s: must be positive", o.DefaultRenewBefore))
	}
	if o.DefaultIssuerKind == "" {
		errs = append(errs, errors.New("--default-issuer-kind: must not be empty (Issuer or ClusterIssuer)"))
	}
	if err := checkTrustDomain(o.TrustDomain); err != nil {
		errs = append(errs, err)
	}
	pol, err := policy.New(splitFlag(o.AllowedIssuers), o.AllowAnyDNSNames, o.ClusterDomain)
	if err != nil {
		errs = append(errs, fmt.Errorf("--allowed-issuers: %w", err))
	}
	for _, s := range splitFlag(o.AllowedDNSNames) {
		g, err := policy.ParseDNSGrant(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--allowed-dns-names: %w", err))
			continue
		}
		pol.AllowedDNSNames = append(pol.AllowedDNSNames, g)
	}
	for _, s := range splitFlag(o.AllowedURISANs) {
		g, err := policy.ParseURIGlob(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--allowed-uri-sans: %w", err))
			continue
		}
		pol.AllowedURISANs = append(pol.AllowedURISANs, g)
	}
	pol.AllowCommonName = o.AllowCommonName
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	inj := &inject.Injector{
		Defaults: annotations.Defaults{
			Issuer:      annotations.IssuerRef{Name: o.DefaultIssuer, Kind: o.DefaultIssuerKind, Group: o.DefaultIssuerGroup},
			Duration:    o.DefaultDuration,
			RenewBefore: o.DefaultRenewBefore,
			TrustDomain: o.TrustDomain,
			Limits:      o.Limits,
		},
		Options: mutate.Options{FrontendImage: o.FrontendImage, BackendImage: o.BackendImage, ClusterDomain: o.ClusterDomain},
		Policy:  pol,
		Checks:  csivalidate.NewMemo(1024),
	}
	if err := o.probe(inj); err != nil {
		return nil, err
	}
	return inj, nil
}

// probe runs the whole pipeline (parse, mutate, policy, the CSI driver's
// rules) on a pod that sets nothing but the opt-in, with a Service that
// selects it, and turns each refusal into an error naming the flags behind
// the refused field.
func (o *InjectOptions) probe(inj *inject.Injector) error {
	ann := map[string]string{annotations.Enable: "true"}
	if o.DefaultIssuer == "" {
		// The annotation is required then; any valid name will do, the
		// kind and group still come from the flags.
		ann[annotations.Issuer] = "probe"
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: "default", Labels: map[string]string{"app": "probe"}, Annotations: ann},
		Spec:       corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "probe"}}},
	}
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "probe"}},
	}
	out := inj.Inject(pod, []corev1.Service{svc})
	if len(out.Errors) == 0 {
		return nil
	}
	var errs []error
	for _, e := range out.Errors {
		errs = append(errs, fmt.Errorf("%s: every pod that relies on them would be refused: %s", o.flagsBehind(e.Field), e.Error()))
	}
	return errors.Join(errs...)
}

// flagsBehind names the flags, with their values, that decide what a pod
// without annotations gets for a field.
func (o *InjectOptions) flagsBehind(fieldPath string) string {
	switch fieldPath {
	case annotations.PathFor(annotations.Issuer).String(), annotations.PathFor(annotations.IssuerKind).String(),
		annotations.PathFor(annotations.IssuerGroup).String():
		return fmt.Sprintf("--default-issuer=%q --default-issuer-kind=%q --default-issuer-group=%q --allowed-issuers=%q",
			o.DefaultIssuer, o.DefaultIssuerKind, o.DefaultIssuerGroup, o.AllowedIssuers)
	case annotations.PathFor(annotations.Duration).String():
		return fmt.Sprintf("--default-duration=%s --default-renew-before=%s --min-duration=%s --max-duration=%s --min-renew-interval=%s", o.DefaultDuration, o.DefaultRenewBefore, o.Limits.MinDuration, o.Limits.MaxDuration, o.Limits.MinRenewInterval)
	case annotations.PathFor(annotations.RenewBefore).String():
		return fmt.Sprintf("--default-renew-before=%s --min-renew-interval=%s", o.DefaultRenewBefore, o.Limits.MinRenewInterval)
	case annotations.PathFor(annotations.URISANs).String():
		return fmt.Sprintf("--trust-domain=%q", o.TrustDomain)
	case annotations.PathFor(annotations.DNSNames).String():
		return fmt.Sprintf("--cluster-domain=%q --max-dns-names=%d", o.ClusterDomain, o.Limits.MaxDNSNames)
	case annotations.PathFor(annotations.KeySize).String():
		return fmt.Sprintf("--max-rsa-key-size=%d", o.Limits.MaxRSAKeySize)
	}
	return "the webhook's flags"
}

// checkTrustDomain applies the SPIFFE spec's rule: a trust domain is
// lower-case letters, digits, dots, dashes and underscores.
func checkTrustDomain(td string) error {
	ok := td != "" && len(td) <= 255
	for _, r := range td {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '-' && r != '_' {
			ok = false
			break
		}
	}
	if !ok {
		return fmt.Errorf("--trust-domain=%q: a SPIFFE trust domain is lower-case letters, digits, '.', '-' and '_', such as cluster.local; every pod's SPIFFE ID would be invalid", td)
	}
	return nil
}

// splitFlag splits a comma list flag, dropping blanks.
func splitFlag(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
