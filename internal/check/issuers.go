package check

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/policy"
)

// IssuerRef names one cert-manager issuer: an Issuer has a namespace, a
// ClusterIssuer has none.
type IssuerRef struct {
	Kind      string
	Group     string
	Namespace string
	Name      string
}

func (r IssuerRef) String() string {
	kind := r.Kind
	if r.Group != annotations.CertManagerGroup {
		kind += "." + r.Group
	}
	if r.Namespace != "" {
		return kind + " " + r.Namespace + "/" + r.Name
	}
	return kind + " " + r.Name
}

// ParseIssuerRef reads "Issuer/<namespace>/<name>" or
// "ClusterIssuer/<name>"; the kind may carry its group as in
// --allowed-issuers ("Issuer.cert-manager.io/ns/name").
func ParseIssuerRef(s string) (IssuerRef, error) {
	parts := strings.Split(s, "/")
	kind, group, _ := strings.Cut(parts[0], ".")
	if group == "" {
		group = annotations.CertManagerGroup
	}
	r := IssuerRef{Kind: kind, Group: group}
	switch {
	case kind == "Issuer" && len(parts) == 3 && parts[1] != "" && parts[2] != "":
		r.Namespace, r.Name = parts[1], parts[2]
	case kind == "ClusterIssuer" && len(parts) == 2 && parts[1] != "":
		r.Name = parts[1]
	default:
		return IssuerRef{}, fmt.Errorf("%q: want Issuer/<namespace>/<name> or ClusterIssuer/<name>", s)
	}
	if group != annotations.CertManagerGroup {
		return IssuerRef{}, fmt.Errorf("%q: only %s issuers can be checked, not group %q", s, annotations.CertManagerGroup, group)
	}
	return r, nil
}

// The webhook flags the issuers check reads from the Deployment.
const (
	FlagDefaultIssuer      = "default-issuer"
	FlagDefaultIssuerKind  = "default-issuer-kind"
	FlagDefaultIssuerGroup = "default-issuer-group"
	FlagAllowedIssuers     = "allowed-issuers"
)

// deploymentFlags reads the webhook's issuer flags from its Deployment's
// container args, as `--flag=value` or `--flag value`.
func (c *Checker) deploymentFlags(ctx context.Context) (map[string]string, error) {
	d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading Deployment %s/%s for the webhook's issuer flags (or pass --default-issuer and --allowed-issuers): %w", c.Namespace, c.Name, err)
	}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("the Deployment %s/%s has no container", c.Namespace, c.Name)
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	for _, cc := range d.Spec.Template.Spec.Containers {
		if cc.Name == "webhook" {
			ctr = cc
		}
	}
	return ParseFlags(ctr.Args), nil
}

// ParseFlags picks the issuer flags out of the webhook's args.
func ParseFlags(args []string) map[string]string {
	out := map[string]string{}
	want := []string{FlagDefaultIssuer, FlagDefaultIssuerKind, FlagDefaultIssuerGroup, FlagAllowedIssuers}
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if a == args[i] {
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		if !slices.Contains(want, name) {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		out[name] = value
	}
	return out
}

// issuerState is one issuer found in the cluster.
type issuerState struct {
	ref    IssuerRef
	ready  bool
	reason string
}

// issuers: the issuers pods depend on are Ready. Named ones (--required-issuers,
// the webhook's default issuer, exact ClusterIssuer names in its allowed
// list) fail the check when missing or not Ready; issuers matched only by
// a glob of the allowed list are reported as warnings, since no pod may
// use them.
func (c *Checker) issuers(ctx context.Context) Result {
	flags := c.WebhookFlags
	if flags == nil {
		var err error
		if flags, err = c.deploymentFlags(ctx); err != nil {
			return fail("%v", err)
		}
	}
	found, err := c.listIssuers(ctx)
	if err != nil {
		return fail("%v", err)
	}
	lookup := func(r IssuerRef) (issuerState, bool) {
		i := slices.IndexFunc(found, func(s issuerState) bool { return s.ref == r })
		if i < 0 {
			return issuerState{}, false
		}
		return found[i], true
	}

	var fails, warns, readyNames []string
	seen := map[IssuerRef]bool{}
	named := func(r IssuerRef, why string) {
		if seen[r] {
			return
		}
		seen[r] = true
		s, ok := lookup(r)
		switch {
		case !ok:
			fails = append(fails, fmt.Sprintf("%s (%s) not found", r, why))
		case !s.ready:
			fails = append(fails, fmt.Sprintf("%s (%s) is not Ready: %s", r, why, s.reason))
		default:
			readyNames = append(readyNames, r.String())
		}
	}
	for _, r := range c.RequiredIssuers {
		named(r, "--required-issuers")
	}

	if name := flags[FlagDefaultIssuer]; name != "" {
		kind, group := flags[FlagDefaultIssuerKind], flags[FlagDefaultIssuerGroup]
		if kind == "" {
			kind = "Issuer"
		}
		if group == "" {
			group = annotations.CertManagerGroup
		}
		switch {
		case group != annotations.CertManagerGroup:
			warns = append(warns, fmt.Sprintf("default issuer %s.%s/%s not checked: only %s issuers can be", kind, group, name, annotations.CertManagerGroup))
		case kind == "ClusterIssuer":
			named(IssuerRef{Kind: kind, Group: group, Name: name}, "--default-issuer")
		default:
			// An Issuer is per namespace: each one of that name must be
			// Ready, and pods elsewhere need their own.
			n := 0
			for _, s := range found {
				if s.ref.Kind == kind && s.ref.Name == name {
					n++
					named(s.ref, "--default-issuer")
				}
			}
			if n == 0 {
				warns = append(warns, fmt.Sprintf("no namespace has an Issuer named %q (--default-issuer): pods that rely on the default get no certificate", name))
			}
		}
	}

	patterns := splitComma(flags[FlagAllowedIssuers])
	if len(patterns) == 0 {
		patterns = []string{policy.DefaultAllowedIssuers}
	}
	for _, p := range patterns {
		pat, err := policy.ParseIssuerPattern(p)
		if err != nil {
			warns = append(warns, fmt.Sprintf("--allowed-issuers entry %q not checked: %v", p, err))
			continue
		}
		if pat.Group != annotations.CertManagerGroup {
			warns = append(warns, fmt.Sprintf("--allowed-issuers entry %q not checked: only %s issuers can be", p, annotations.CertManagerGroup))
			continue
		}
		if pat.Kind == "ClusterIssuer" && !strings.ContainsAny(pat.Name, "*?[") {
			named(IssuerRef{Kind: pat.Kind, Group: pat.Group, Name: pat.Name}, "--allowed-issuers")
			continue
		}
		for _, s := range found {
			if seen[s.ref] || !pat.Matches(annotations.IssuerRef{Name: s.ref.Name, Kind: s.ref.Kind, Group: s.ref.Group}) {
				continue
			}
			seen[s.ref] = true
			if s.ready {
				readyNames = append(readyNames, s.ref.String())
			} else {
				warns = append(warns, fmt.Sprintf("%s (allowed by %q) is not Ready: %s", s.ref, p, s.reason))
			}
		}
	}

	summary := fmt.Sprintf("%d issuer(s) Ready", len(readyNames))
	if len(readyNames) > 0 {
		summary += ": " + list(readyNames, 5)
	}
	switch {
	case len(fails) > 0:
		return fail("%s; pods that use them get no certificate (their CSI volume stays unmounted): fix the issuer (kubectl describe issuer/clusterissuer) or the webhook's issuer flags. %s",
			strings.Join(fails, "; "), summary)
	case len(warns) > 0:
		return warn("%s. %s", strings.Join(warns, "; "), summary)
	case len(readyNames) == 0:
		return warn("no issuer the webhook allows (%s) exists: opted-in pods cannot get certificates until one is created", strings.Join(patterns, ","))
	}
	return ok("%s", summary)
}

// listIssuers reads every Issuer and ClusterIssuer with its Ready state.
func (c *Checker) listIssuers(ctx context.Context) ([]issuerState, error) {
	var out []issuerState
	for _, kind := range []struct {
		name string
		list func() (*unstructured.UnstructuredList, error)
	}{
		{"Issuer", func() (*unstructured.UnstructuredList, error) {
			return c.Dynamic.Resource(issuersGVR).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		}},
		{"ClusterIssuer", func() (*unstructured.UnstructuredList, error) {
			return c.Dynamic.Resource(clusterIssuersGVR).List(ctx, metav1.ListOptions{})
		}},
	} {
		l, err := kind.list()
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the API server does not serve %ss: cert-manager's CRDs are not installed", kind.name)
		}
		if err != nil {
			return nil, fmt.Errorf("listing %ss: %w", kind.name, err)
		}
		for i := range l.Items {
			u := &l.Items[i]
			ready, reason := readyCondition(u)
			out = append(out, issuerState{
				ref:   IssuerRef{Kind: kind.name, Group: annotations.CertManagerGroup, Namespace: u.GetNamespace(), Name: u.GetName()},
				ready: ready, reason: reason,
			})
		}
	}
	return out, nil
}

// readyCondition reads a cert-manager object's Ready condition, and says
// why it is not Ready.
func readyCondition(u *unstructured.Unstructured) (bool, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, raw := range conds {
		cond, _ := raw.(map[string]any)
		if cond["type"] != "Ready" {
			continue
		}
		if cond["status"] == "True" {
			return true, ""
		}
		return false, fmt.Sprintf("Ready=%v, reason %v: %v", cond["status"], cond["reason"], cond["message"])
	}
	return false, "no Ready condition yet (is the cert-manager controller running?)"
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
