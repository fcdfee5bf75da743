// Package inject is the one path from an incoming pod to an injected pod:
// parse the annotations, mutate, apply the platform policy, and validate the
// result with the CSI driver's own rules. The admission handler and the
// offline `render` command both call it, so what `render` shows is exactly
// what the webhook would do.
package inject

import (
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
	Policy   policy.Policy
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
	cfg, warnings, errs := annotations.Parse(pod.Annotations, in.Defaults)
	out := Outcome{Warnings: warnings, Config: cfg}
	if len(errs) > 0 {
		out.Errors = errs
		return out
	}
	if !cfg.Enabled {
		return out
	}
	errs = append(errs, in.Policy.CheckIssuer(cfg.Issuer)...)

	res, mErrs := mutate.Mutate(pod, cfg, services, in.Options)
	errs = append(errs, mErrs...)
	if len(mErrs) == 0 {
		errs = append(errs, in.Policy.CheckDNSNames(pod.Namespace, splitNonEmpty(res.Attributes[mutate.AttrDNSNames]))...)
		errs = append(errs, in.Checks.Check(res.Pod, res.Attributes)...)
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

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
