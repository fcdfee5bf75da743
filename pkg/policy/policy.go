// Package policy holds the platform team's limits on what a pod may ask for:
// which issuers may sign its certificate, and which DNS names it may claim.
// Without them any workload could request a certificate for another team's
// Service from a cluster-wide CA.
package policy

import (
	"fmt"
	"os"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// DefaultAllowedIssuers is the policy when --allowed-issuers is empty: any
// namespaced cert-manager Issuer (which by definition lives in the pod's own
// namespace), and no ClusterIssuer.
const DefaultAllowedIssuers = "Issuer/*"

// IssuerPattern matches issuers by kind, group and a glob on the name.
type IssuerPattern struct {
	Kind  string
	Group string
	// Name is a path.Match glob.
	Name string
	raw  string
}

// String returns the pattern as the user wrote it.
func (p IssuerPattern) String() string { return p.raw }

// ParseIssuerPattern reads "Kind/name" or "Kind.group/name"; the name is a
// glob (`*`, `?`, `[a-z]`). A kind without a group means cert-manager.io.
func ParseIssuerPattern(s string) (IssuerPattern, error) {
	s = strings.TrimSpace(s)
	kindGroup, name, ok := strings.Cut(s, "/")
	if !ok || kindGroup == "" || name == "" {
		return IssuerPattern{}, fmt.Errorf("issuer pattern %q: want Kind/name or Kind.group/name, such as Issuer/* or ClusterIssuer/mesh-ca", s)
	}
	kind, group, hasGroup := strings.Cut(kindGroup, ".")
	if !hasGroup {
		group = annotations.CertManagerGroup
	}
	if _, err := path.Match(name, ""); err != nil {
		return IssuerPattern{}, fmt.Errorf("issuer pattern %q: bad name glob %q: %w", s, name, err)
	}
	return IssuerPattern{Kind: kind, Group: group, Name: name, raw: s}, nil
}

// Matches reports whether the pattern allows ref.
func (p IssuerPattern) Matches(ref annotations.IssuerRef) bool {
	if p.Kind != ref.Kind || p.Group != ref.Group {
		return false
	}
	ok, _ := path.Match(p.Name, ref.Name)
	return ok
}

// Policy is the set of limits applied to every opted-in pod.
type Policy struct {
	// AllowedIssuers: an issuer must match one of them.
	AllowedIssuers []IssuerPattern
	// AllowAnyDNSNames lifts the rule that DNS names belong to the pod's
	// own namespace.
	AllowAnyDNSNames bool
	// ClusterDomain is the suffix of in-cluster names (cluster.local).
	ClusterDomain string
}

// New builds a Policy from flag values. Empty patterns mean the default.
func New(patterns []string, allowAnyDNSNames bool, clusterDomain string) (Policy, error) {
	p := Policy{AllowAnyDNSNames: allowAnyDNSNames, ClusterDomain: clusterDomain}
	for _, s := range patterns {
		if strings.TrimSpace(s) == "" {
			continue
		}
		ip, err := ParseIssuerPattern(s)
		if err != nil {
			return Policy{}, err
		}
		p.AllowedIssuers = append(p.AllowedIssuers, ip)
	}
	if len(p.AllowedIssuers) == 0 { // none given, or only blanks ("--allowed-issuers=,")
		ip, err := ParseIssuerPattern(DefaultAllowedIssuers)
		if err != nil {
			return Policy{}, err
		}
		p.AllowedIssuers = []IssuerPattern{ip}
	}
	return p, nil
}

// CheckIssuer refuses an issuer that no pattern allows.
func (p Policy) CheckIssuer(ref annotations.IssuerRef) field.ErrorList {
	for _, pat := range p.AllowedIssuers {
		if pat.Matches(ref) {
			return nil
		}
	}
	allowed := make([]string, len(p.AllowedIssuers))
	for i, pat := range p.AllowedIssuers {
		allowed[i] = pat.String()
	}
	what := ref.Kind + "/" + ref.Name
	if ref.Group != annotations.CertManagerGroup {
		what = ref.Kind + "." + ref.Group + "/" + ref.Name
	}
	return field.ErrorList{field.Forbidden(annotations.PathFor(annotations.Issuer),
		fmt.Sprintf("issuer %s is not allowed by this webhook's --allowed-issuers (allowed: %s)", what, strings.Join(allowed, ", ")))}
}

// CheckDNSNames refuses names outside the pod's namespace. A name is the
// namespace's when it is a bare Service name (resolved relative to the
// client's namespace) or ends in .<ns>, .<ns>.svc or .<ns>.svc.<domain>.
// Templates are expanded first, with ${POD_NAMESPACE} as the namespace.
func (p Policy) CheckDNSNames(namespace string, names []string) field.ErrorList {
	if p.AllowAnyDNSNames {
		return nil
	}
	suffixes := []string{"." + namespace, "." + namespace + ".svc"}
	if p.ClusterDomain != "" {
		suffixes = append(suffixes, "."+namespace+".svc."+p.ClusterDomain)
	}
	var errs field.ErrorList
	for _, raw := range names {
		// os.Expand, as Parse and the driver do: $POD_NAMESPACE counts too.
		name := os.Expand(raw, func(v string) string {
			if v == "POD_NAMESPACE" {
				return namespace
			}
			return "${" + v + "}"
		})
		if !strings.Contains(name, ".") || hasAnySuffix(name, suffixes) {
			continue
		}
		errs = append(errs, field.Forbidden(annotations.PathFor(annotations.DNSNames),
			fmt.Sprintf("%q is outside namespace %s: names must be svc, svc.%s, svc.%s.svc or svc.%s.svc.%s unless the webhook runs with --allow-any-dns-names",
				raw, namespace, namespace, namespace, namespace, p.ClusterDomain)))
	}
	return errs
}

func hasAnySuffix(s string, suffixes []string) bool {
	for _, suf := range suffixes {
		if strings.HasSuffix(s, suf) && len(s) > len(suf) {
			return true
		}
	}
	return false
}
