// Package inject is the one path from an incoming pod to an injected pod:
// parse the annotations, mutate, apply the platform policy, and validate the
// result with the CSI driver's own rules. The admission handler and the
// offline `render` command both call it, so what `render` shows is exactly
// what the webhook would do.
package inject

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/csivalidate"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/pkg/policy"
)

// Injector holds the webhook-wide settings. It is safe for concurrent use.
type Injector struct {
	Defaults annotations.Defaults
	Options  mutate.Options
	// Policy decides what a pod may ask for. Its TrustDomain and
	// MaxDNSNames are taken from Defaults, so the two cannot disagree.
	Policy policy.Policy
	// Checks remembers the CSI driver's verdicts; nil checks every time.
	Checks *csivalidate.Memo
}

// Outcome is the result of running the pipeline on one pod.
type Outcome struct {
	// Injected is false when the pod did not opt in or was refused.
	Injected bool
	// Pod is the mutated copy when Injected is true.
	Pod *corev1.Pod
	// Config is the effective configuration of an opted-in pod.
	Config annotations.Config
	// Attributes are the CSI volume attributes that were injected.
	Attributes map[string]string
	// Warnings are returned even when the pod is refused.
	Warnings []string
	// Errors, when not empty, mean the pod must be refused; every cause is
	// listed, each on the annotation or field that caused it.
	Errors field.ErrorList
}

// Inject runs the pipeline. pod must carry its namespace (the admission
// request's namespace when the object has none). services are the Services
// of that namespace, for DNS names derived from selectors.
func (in *Injector) Inject(pod *corev1.Pod, services []corev1.Service) Outcome {
	return in.run(pod, services, true)
}

func (in *Injector) run(pod *corev1.Pod, services []corev1.Service, driverRules bool) Outcome {
	cfg, warnings, errs := annotations.ParsePartial(pod.Annotations, in.Defaults)
	out := Outcome{Warnings: warnings}
	if len(errs) > 0 {
		out.Errors = append(errs, in.alsoWrong(pod, cfg, errs, services)...)
		return out
	}
	out.Config = cfg
	if !cfg.Enabled {
		return out
	}
	errs = append(errs, in.Policy.CheckIssuer(cfg.Issuer)...)

	res, mErrs := mutate.Mutate(pod, cfg, services, in.Options)
	errs = append(errs, mErrs...)
	if len(mErrs) == 0 {
		errs = append(errs, in.policy().CheckNames(mutate.PodIdentity(res.Pod), namesOf(res.Attributes, cfg.DNSNames == nil))...)
		if driverRules {
			errs = append(errs, in.Checks.Check(res.Pod, res.Attributes)...)
		}
	} else {
		// The pod is refused for what the mutation found; the names it
		// asks for are judged too, so that one answer lists everything.
		errs = append(errs, in.checkNamesOf(pod, cfg, services, func(...string) bool { return false })...)
	}
	out.Warnings = append(out.Warnings, res.Warnings...)
	if len(errs) > 0 {
		out.Errors = errs
		return out
	}
	out.Injected = true
	out.Pod = res.Pod
	out.Attributes = res.Attributes
	return out
}

// alsoWrong runs the checks that come after parsing (the issuer policy and
// the mutation's checks of the pod: named containers, mount path
// collisions, the containers' groups, volume names) on a pod whose
// annotations are in error, with the partial Config of the valid ones, so
// that a refusal lists every problem the user has to fix, not only the
// first stage's. A check is left out when it depends on an annotation that
// is itself in error: its answer would be about a value the user did not
// write. The mutation's warnings are dropped for the same reason.
func (in *Injector) alsoWrong(pod *corev1.Pod, cfg annotations.Config, parseErrs field.ErrorList, services []corev1.Service) field.ErrorList {
	if !cfg.Enabled {
		return nil
	}
	bad := make(map[string]bool, len(parseErrs))
	for _, e := range parseErrs {
		bad[e.Field] = true
	}
	failed := func(keys ...string) bool {
		for _, k := range keys {
			if bad[annotations.PathFor(k).String()] {
				return true
			}
		}
		return false
	}
	var errs field.ErrorList
	if !failed(annotations.Issuer, annotations.IssuerKind, annotations.IssuerGroup) {
		errs = append(errs, in.Policy.CheckIssuer(cfg.Issuer)...)
	}
	errs = append(errs, in.checkNamesOf(pod, cfg, services, failed)...)
	if cfg.Containers != nil && len(cfg.Containers) == 0 {
		// mtls.demo/containers names no valid container: nothing is
		// selected, and its own errors say why.
		return errs
	}
	_, mErrs := mutate.Mutate(pod, cfg, services, in.Options)
	for _, e := range mErrs {
		switch {
		case bad[e.Field] && e.Field != containersPath:
			// The mutation judged the default of an annotation in error
			// (mtls.demo/mount-path, mtls.demo/app). The valid names of
			// mtls.demo/containers are the user's own, and checked.
			continue
		case strings.HasSuffix(e.Field, ".securityContext.runAsGroup") && failed(annotations.FSGroup):
			// A valid mtls.demo/fs-group would settle the groups.
			continue
		}
		errs = append(errs, e)
	}
	return errs
}

var containersPath = annotations.PathFor(annotations.Containers).String()

// checkNamesOf runs the name policy on the names cfg asks for, on a pod the
// mutation did not finish: the names whose annotation failed (as failed
// tells) are left out, since their errors already say what is wrong, and
// so is the common name when the DNS names it must be one of failed.
func (in *Injector) checkNamesOf(pod *corev1.Pod, cfg annotations.Config, services []corev1.Service, failed func(keys ...string) bool) field.ErrorList {
	if pod.Namespace == "" {
		return nil
	}
	var n policy.Names
	dnsOK := !failed(annotations.DNSNames)
	if dnsOK {
		if cfg.DNSNames != nil {
			n.DNSNames = cfg.DNSNames
		} else {
			n.DNSNames, n.DNSDerived = mutate.DeriveDNSNames(pod, services, in.Options.ClusterDomain), true
		}
	}
	if dnsOK && !failed(annotations.CommonName) {
		n.CommonName = cfg.CommonName
	}
	if !failed(annotations.URISANs) {
		n.URIs = cfg.URISANs
	}
	return in.policy().CheckNames(mutate.PodIdentity(pod), n)
}

// policy is in.Policy with the settings it shares with Defaults.
func (in *Injector) policy() policy.Policy {
	p := in.Policy
	p.TrustDomain = in.Defaults.TrustDomain
	p.MaxDNSNames = in.Defaults.Limits.WithDefaults().MaxDNSNames
	return p
}

func namesOf(attrs map[string]string, derived bool) policy.Names {
	return policy.Names{
		CommonName: attrs[mutate.AttrCommonName],
		DNSNames:   splitNonEmpty(attrs[mutate.AttrDNSNames]),
		URIs:       splitNonEmpty(attrs[mutate.AttrURISANs]),
		DNSDerived: derived,
	}
}

// Verify checks a pod as the API server is about to store it, after every
// mutating webhook: a csi.cert-manager.io volume asks the issuer for a
// certificate in the pod's name, so the only one allowed is the mtls-certs
// volume this webhook writes, on an opted-in pod, with exactly the
// attributes the pipeline produces for the pod's annotations. Anything else
// (a volume written by hand, on any pod, or changed after the webhook) is
// refused. DNS names derived from Services are checked against the policy
// rather than recomputed: a Service created in between must not refuse the
// pod.
func (in *Injector) Verify(pod *corev1.Pod) field.ErrorList {
	vols := field.NewPath("spec", "volumes")
	var csi []int
	for i, v := range pod.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == mutate.Driver {
			csi = append(csi, i)
		}
	}
	if len(csi) == 0 {
		return nil
	}
	if pod.Annotations[annotations.Enable] != "true" {
		v := pod.Spec.Volumes[csi[0]]
		return field.ErrorList{field.Forbidden(vols.Index(csi[0]).Child("csi", "driver"), fmt.Sprintf(
			"volume %s: only mtls-webhook may add a %s volume, as %s on a pod annotated %s: \"true\", with the pod's own identity; remove the volume, or opt in with the annotation and let the webhook write it",
			v.Name, mutate.Driver, mutate.VolumeName, annotations.Enable))}
	}
	var errs field.ErrorList
	ours := -1
	for _, i := range csi {
		if pod.Spec.Volumes[i].Name == mutate.VolumeName {
			ours = i
			continue
		}
		errs = append(errs, field.Forbidden(vols.Index(i).Child("name"), fmt.Sprintf(
			"volume %s: a pod may have one %s volume, the %s volume mtls-webhook writes; remove this one",
			pod.Spec.Volumes[i].Name, mutate.Driver, mutate.VolumeName)))
	}
	if ours < 0 {
		return errs
	}
	// Mutate replaces the volume by name, so running the pipeline on the
	// pod as stored gives the attributes the webhook writes for it.
	out := in.run(pod, nil, false)
	if len(out.Errors) > 0 {
		return append(errs, out.Errors...)
	}
	vol := pod.Spec.Volumes[ours].CSI
	path := vols.Index(ours).Child("csi")
	if vol.ReadOnly == nil || !*vol.ReadOnly {
		errs = append(errs, field.Forbidden(path.Child("readOnly"), "mtls-webhook writes the "+mutate.VolumeName+" volume read-only"))
	}
	_, explicit := pod.Annotations[annotations.DNSNames]
	got, want := vol.VolumeAttributes, out.Attributes
	union := make(map[string]struct{}, len(got)+len(want))
	for k := range got {
		union[k] = struct{}{}
	}
	for k := range want {
		union[k] = struct{}{}
	}
	mismatched := 0
	for _, k := range slices.Sorted(maps.Keys(union)) {
		g, hasG := got[k]
		w, hasW := want[k]
		if k == mutate.AttrDNSNames && !explicit {
			// Derived from Services: any names the policy allows this pod.
			names := policy.Names{DNSNames: splitNonEmpty(g), DNSDerived: true}
			errs = append(errs, in.policy().CheckNames(mutate.PodIdentity(pod), names)...)
			continue
		}
		if g == w && hasG == hasW {
			continue
		}
		// A forged volume may carry any number of attributes of any size:
		// the answer names the first few, cut short, and counts the rest.
		if mismatched++; mismatched > maxAttributeErrors {
			continue
		}
		detail := fmt.Sprintf("is %q, but mtls-webhook writes %q for this pod's annotations", annotations.Quote(g), w)
		switch {
		case !hasG:
			detail = fmt.Sprintf("is missing, but mtls-webhook writes %q for this pod's annotations", w)
		case !hasW:
			detail = fmt.Sprintf("is %q, but mtls-webhook never writes it for this pod's annotations", annotations.Quote(g))
		}
		errs = append(errs, field.Forbidden(path.Child("volumeAttributes").Key(annotations.Quote(k)),
			detail+": the volume was written or changed by something other than mtls-webhook"))
	}
	if mismatched > maxAttributeErrors {
		errs = append(errs, field.Forbidden(path.Child("volumeAttributes"), fmt.Sprintf(
			"and %d more attributes differ from what mtls-webhook writes (not listed)", mismatched-maxAttributeErrors)))
	}
	return errs
}

// maxAttributeErrors is how many differing attributes of a volume Verify
// names one by one.
const maxAttributeErrors = 8

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
