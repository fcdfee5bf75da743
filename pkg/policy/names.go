package policy

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// DNSGrant lets the pods of one namespace (or of every namespace, "*") claim
// DNS names matching Glob, beyond the names of their own namespace.
type DNSGrant struct {
	Namespace string
	Glob      Glob
}

// String returns the grant as the flag spells it: ns=glob.
func (g DNSGrant) String() string { return g.Namespace + "=" + g.Glob.String() }

// ParseDNSGrant reads "namespace=glob" or "*=glob".
func ParseDNSGrant(s string) (DNSGrant, error) {
	ns, glob, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || ns == "" || glob == "" {
		return DNSGrant{}, fmt.Errorf("%q: want namespace=glob or *=glob, such as shop=*.shop.example.com", s)
	}
	if ns != "*" {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return DNSGrant{}, fmt.Errorf("%q: %q is not a namespace name (or *): %s", s, ns, strings.Join(msgs, "; "))
		}
	}
	g, err := ParseGlob(glob, '.')
	if err != nil {
		return DNSGrant{}, fmt.Errorf("%q: %w", s, err)
	}
	return DNSGrant{Namespace: ns, Glob: g}, nil
}

// ParseURIGlob reads one glob of --allowed-uri-sans. A spiffe: glob is
// refused: the pod's own SPIFFE ID is always there, and no other may be.
func ParseURIGlob(s string) (Glob, error) {
	s = strings.TrimSpace(s)
	if hasSPIFFEScheme(s) || strings.HasPrefix(s, "*") || strings.HasPrefix(s, "?") {
		return Glob{}, fmt.Errorf("%q: a pod's only SPIFFE ID is its own, so no glob may match another (nor start with a wildcard scheme)", s)
	}
	if !strings.Contains(s, ":") {
		return Glob{}, fmt.Errorf("%q: want a URI glob with its scheme, such as urn:shop:${SERVICE_ACCOUNT_NAME} or https://*.example.com/", s)
	}
	return ParseGlob(s, '/')
}

func hasSPIFFEScheme(s string) bool {
	return len(s) >= 7 && strings.EqualFold(s[:7], "spiffe:")
}

// Names are what one certificate will carry, as the injected attributes
// hold them: templates not yet expanded.
type Names struct {
	CommonName string
	DNSNames   []string
	URIs       []string
	// DNSDerived says the DNS names come from the Services that select the
	// pod, not from mtls.demo/dns-names.
	DNSDerived bool
}

// CheckNames binds every name of the certificate to the pod: the URI SANs
// are its own SPIFFE ID plus what --allowed-uri-sans allows, the DNS names
// belong to its namespace (or an admin's grant), and the common name is
// refused unless allowed, and then only one of those names. Templates are
// checked as the CSI driver will expand them for this pod; see
// annotations.Identity for what is not known yet at admission.
func (p Policy) CheckNames(id annotations.Identity, n Names) field.ErrorList {
	var errs field.ErrorList
	own := id.SPIFFEID(p.TrustDomain)
	errs = append(errs, p.checkURIs(id, own, n.URIs)...)
	errs = append(errs, p.checkDNSNames(id, n)...)
	errs = append(errs, p.checkCommonName(id, own, n)...)
	return errs
}

func (p Policy) checkURIs(id annotations.Identity, own string, uris []string) field.ErrorList {
	var errs field.ErrorList
	path := annotations.PathFor(annotations.URISANs)
	for _, raw := range uris {
		exact := id.Expand(raw, annotations.Exact)
		if hasSPIFFEScheme(exact) {
			if exact != own {
				errs = append(errs, field.Invalid(path, raw, fmt.Sprintf(
					"%sa pod's only SPIFFE ID is its own, %s (trust domain from the webhook's --trust-domain, namespace and service account from the pod), which the webhook always adds; no other spiffe:// URI is allowed",
					expandsTo(id, raw), own)))
			}
			continue
		}
		if p.uriAllowed(id, exact) {
			continue
		}
		errs = append(errs, field.Invalid(path, raw, fmt.Sprintf("%sa URI SAN besides the pod's SPIFFE ID %s must match the webhook's --allowed-uri-sans (%s)",
			expandsTo(id, raw), own, globList(p.AllowedURISANs))))
	}
	return errs
}

func (p Policy) uriAllowed(id annotations.Identity, exact string) bool {
	for _, g := range p.AllowedURISANs {
		if g.Match(id, exact) {
			return true
		}
	}
	return false
}

func (p Policy) checkDNSNames(id annotations.Identity, n Names) field.ErrorList {
	path := annotations.PathFor(annotations.DNSNames)
	if limit := p.maxDNSNames(); len(n.DNSNames) > limit {
		if n.DNSDerived {
			return field.ErrorList{field.Invalid(path, fmt.Sprintf("(%d names derived from Services)", len(n.DNSNames)), fmt.Sprintf(
				"the Services that select this pod give %d DNS names; a certificate may carry at most %d (--max-dns-names): list the ones it needs in %s",
				len(n.DNSNames), limit, annotations.DNSNames))}
		}
		return field.ErrorList{field.Invalid(path, fmt.Sprintf("(%d DNS names)", len(n.DNSNames)),
			fmt.Sprintf("a certificate may carry at most %d DNS names (--max-dns-names)", limit))}
	}
	if p.AllowAnyDNSNames {
		return nil
	}
	var errs field.ErrorList
	for _, raw := range n.DNSNames {
		if p.dnsAllowed(id, raw) {
			continue
		}
		errs = append(errs, field.Invalid(path, raw, expandsTo(id, raw)+p.DNSRule(id.Namespace)))
	}
	return errs
}

// DNSRule is the rule CheckNames enforces on DNS names, as its errors state
// it, for a pod in namespace ns.
func (p Policy) DNSRule(ns string) string {
	cd := p.ClusterDomain
	rule := fmt.Sprintf("a DNS name must be L.%s, L.%s.svc or L.%s.svc.%s, where L is exactly one label; the only wildcard is *.%s.svc.%s; a bare label (web, localhost) is not given without a grant, since a pod of any namespace could claim it",
		ns, ns, ns, cd, ns, cd)
	var grants []string
	for _, g := range p.AllowedDNSNames {
		if g.Namespace == "*" || g.Namespace == ns {
			grants = append(grants, g.Glob.String())
		}
	}
	if len(grants) > 0 {
		rule += "; or match what the webhook's --allowed-dns-names grants namespace " + ns + ": " + strings.Join(grants, ", ")
	} else {
		rule += "; other names need an admin's --allowed-dns-names grant for namespace " + ns
	}
	return rule
}

// dnsAllowed applies the rule of DNSRule to one name.
func (p Policy) dnsAllowed(id annotations.Identity, raw string) bool {
	// The form is read from the shaped expansion: an unknown suffix or UID
	// is made of letters, digits and dashes, so it adds no label.
	name := id.Expand(raw, annotations.Shaped)
	if ownZone(name, id.Namespace, p.ClusterDomain) {
		return true
	}
	exact := id.Expand(raw, annotations.Exact)
	for _, g := range p.AllowedDNSNames {
		if (g.Namespace == "*" || g.Namespace == id.Namespace) && g.Glob.Match(id, exact) {
			return true
		}
	}
	return false
}

// ownZone reports whether name is one of the namespace's own forms.
func ownZone(name, ns, clusterDomain string) bool {
	labels := strings.Split(name, ".")
	first, rest := labels[0], labels[1:]
	if first == "*" {
		// Only *.ns.svc.<cluster-domain>: a wildcard one level under the
		// namespace's Service zone.
		return clusterDomain != "" && strings.Join(rest, ".") == ns+".svc."+clusterDomain
	}
	if len(validation.IsDNS1123Label(first)) > 0 {
		return false
	}
	switch tail := strings.Join(rest, "."); {
	case len(rest) == 0:
		// A bare label names a host in every namespace's search path:
		// any pod could claim it, so only an admin's grant gives one.
		return false
	case tail == ns, tail == ns+".svc":
		return true
	case clusterDomain != "" && tail == ns+".svc."+clusterDomain:
		return true
	}
	return false
}

func (p Policy) checkCommonName(id annotations.Identity, own string, n Names) field.ErrorList {
	if n.CommonName == "" {
		return nil
	}
	path := annotations.PathFor(annotations.CommonName)
	if !p.AllowCommonName {
		return field.ErrorList{field.Invalid(path, n.CommonName,
			"this webhook gives no common name (an admin may allow one with --allow-common-name): a certificate names the pod by its SPIFFE ID and DNS names, and servers that map a common name to a user would trust any string here")}
	}
	cn := id.Expand(n.CommonName, annotations.Exact)
	if cn == own {
		return nil
	}
	for _, d := range n.DNSNames {
		if cn == id.Expand(d, annotations.Exact) {
			return nil
		}
	}
	return field.ErrorList{field.Invalid(path, n.CommonName, fmt.Sprintf(
		"%sthe common name must be one of the certificate's own DNS names or its SPIFFE ID %s", expandsTo(id, n.CommonName), own))}
}

// expandsTo says what a templated value becomes for this pod, and how the
// parts not known yet were read; nothing for a literal value.
func expandsTo(id annotations.Identity, raw string) string {
	if !strings.Contains(raw, "$") {
		return ""
	}
	s := fmt.Sprintf("expands to %q for this pod", id.Expand(raw, annotations.Shaped))
	var unknown []string
	if id.Name == "" && (strings.Contains(raw, "POD_NAME}") || strings.Contains(raw, "$POD_NAME")) {
		unknown = append(unknown, fmt.Sprintf("${POD_NAME} is %s plus the %d characters the API server picks", id.GenerateName, annotations.GenerateSuffixLen))
	}
	if strings.Contains(raw, "POD_UID") {
		unknown = append(unknown, "${POD_UID} is not known before the pod is created")
	}
	if len(unknown) > 0 {
		s += " (" + strings.Join(unknown, "; ") + ", so every value they may take must fit)"
	}
	return s + "; "
}

func globList(gs []Glob) string {
	if len(gs) == 0 {
		return "none allowed"
	}
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	return strings.Join(out, ", ")
}
