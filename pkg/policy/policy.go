// Package policy holds the platform team's limits on what a pod may ask for:
// which issuers may sign its certificate, and which names it may claim. A
// certificate is the identity mTLS checks, so every name in it is bound to the
// pod: its own SPIFFE ID, DNS names of its own namespace, and only what an
// admin's flags add. Without this any workload could request a certificate for
// another team's identity from a shared CA.
package policy

import (
	"fmt"
	"path"
	"regexp"
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
	if !kindPattern.MatchString(kind) {
		return IssuerPattern{}, fmt.Errorf("issuer pattern %q: kind %q must be spelt as the API spells it, a capital letter first, such as Issuer or ClusterIssuer; no pod could ever match it", s, kind)
	}
	if group == annotations.CertManagerGroup && kind != annotations.KindIssuer && kind != annotations.KindClusterIssuer {
		return IssuerPattern{}, fmt.Errorf("issuer pattern %q: cert-manager.io has only the kinds Issuer and ClusterIssuer", s)
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

var kindPattern = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// Policy is the set of limits applied to every opted-in pod.
type Policy struct {
	// AllowedIssuers: an issuer must match one of them.
	AllowedIssuers []IssuerPattern
	// AllowAnyDNSNames lifts the rule that DNS names belong to the pod's
	// own namespace (--allow-any-dns-names); the other checks stay.
	AllowAnyDNSNames bool
	// AllowedDNSNames grant names beyond the namespace's own forms, per
	// namespace (--allowed-dns-names).
	AllowedDNSNames []DNSGrant
	// AllowedURISANs are the URIs a pod may carry besides its SPIFFE ID
	// (--allowed-uri-sans); none by default.
	AllowedURISANs []Glob
	// AllowCommonName lets a pod have a common name, one of its own names
	// (--allow-common-name).
	AllowCommonName bool
	// MaxDNSNames caps the DNS names of one certificate, derived ones
	// included; 0 means annotations.DefaultMaxDNSNames.
	MaxDNSNames int
	// ClusterDomain is the suffix of in-cluster names (cluster.local).
	ClusterDomain string
	// TrustDomain is the SPIFFE trust domain of the pods' IDs.
	TrustDomain string
}

func (p Policy) maxDNSNames() int {
	if p.MaxDNSNames > 0 {
		return p.MaxDNSNames
	}
	return annotations.DefaultMaxDNSNames
}

// New builds a Policy from flag values. Empty patterns mean the default.
func New(patterns []string, allowAnyDNSNames bool, clusterDomain string) (Policy, error) {
	p := Policy{AllowAnyDNSNames: allowAnyDNSNames, ClusterDomain: clusterDomain, TrustDomain: annotations.NewDefaults().TrustDomain}
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
