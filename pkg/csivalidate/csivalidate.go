// Package csivalidate runs the cert-manager CSI driver's own defaulting,
// validation and request generation on the attributes the webhook injects,
// at admission time. Whatever the driver would refuse at mount time (leaving
// the pod stuck in ContainerCreating) is refused at `kubectl apply` instead,
// with the error moved onto the annotation that caused it.
package csivalidate

import (
	"fmt"
	"maps"
	"net"
	"strings"

	"github.com/cert-manager/csi-driver/pkg/apis/defaults"
	csiapi "github.com/cert-manager/csi-driver/pkg/apis/v1alpha1"
	"github.com/cert-manager/csi-driver/pkg/apis/validation"
	"github.com/cert-manager/csi-driver/pkg/requestgen"
	"github.com/cert-manager/csi-lib/metadata"
	corev1 "k8s.io/api/core/v1"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// PlaceholderSuffix stands in for the random suffix the API server appends
// to generateName, so that ${POD_NAME} can be expanded and measured before
// the pod has a name.
const PlaceholderSuffix = "xxxxx"

// placeholderUID has the shape of a real pod UID.
const placeholderUID = "00000000-0000-0000-0000-000000000000"

// maxCommonName is the X.509 upper bound for a subject common name.
const maxCommonName = 64

// Check validates attrs the way the driver will when the kubelet mounts the
// volume for pod: defaults, the driver's attribute validation, and a dry run
// of the certificate request with the pod's identity filled in. It also
// checks the expanded names, which the driver leaves to the issuer.
func Check(pod *corev1.Pod, attrs map[string]string) field.ErrorList {
	vc := VolumeContext(pod, attrs)

	// RequestForMetadata applies the driver's defaults and validation itself,
	// so the happy path runs them once. Only when it fails are they run
	// again on their own, for an error list that can be mapped field by
	// field.
	bundle, err := requestgen.RequestForMetadata(metadata.Metadata{VolumeContext: vc})
	if err != nil {
		defaulted, dErr := defaults.SetDefaultAttributes(vc)
		if dErr != nil {
			return field.ErrorList{field.InternalError(annotations.PathFor(annotations.Enable), dErr)}
		}
		if el := validation.ValidateAttributes(defaulted); len(el) > 0 {
			out := make(field.ErrorList, 0, len(el))
			for _, e := range el {
				out = append(out, remap(e))
			}
			return out
		}
		attr := attributeIn(err.Error())
		return field.ErrorList{field.Invalid(annotations.PathFor(mutate.AnnotationFor(attr)), attrs[attr],
			"the cert-manager CSI driver cannot build a certificate request from it: "+err.Error())}
	}

	var errs field.ErrorList
	req := bundle.Request
	if n := len(req.Subject.CommonName); n > maxCommonName {
		errs = append(errs, field.Invalid(annotations.PathFor(annotations.CommonName), attrs[mutate.AttrCommonName],
			fmt.Sprintf("expands to %q (%d characters) for this pod; a common name has at most %d", req.Subject.CommonName, n, maxCommonName)))
	}
	for _, name := range req.DNSNames {
		for _, msg := range k8svalidation.IsDNS1123Subdomain(strings.TrimPrefix(name, "*.")) {
			errs = append(errs, field.Invalid(annotations.PathFor(annotations.DNSNames), attrs[mutate.AttrDNSNames],
				fmt.Sprintf("expands to %q for this pod, which is not a valid DNS name: %s", name, msg)))
		}
		for _, label := range strings.Split(name, ".") {
			if len(label) > 63 {
				errs = append(errs, field.Invalid(annotations.PathFor(annotations.DNSNames), attrs[mutate.AttrDNSNames],
					fmt.Sprintf("expands to %q for this pod, whose label %q is longer than 63 characters", name, label)))
			}
		}
		if net.ParseIP(name) != nil {
			errs = append(errs, field.Invalid(annotations.PathFor(annotations.DNSNames), attrs[mutate.AttrDNSNames],
				fmt.Sprintf("%q is an IP address, not a DNS name", name)))
		}
	}
	if req.Subject.CommonName == "" && len(req.DNSNames) == 0 && len(req.URIs) == 0 {
		errs = append(errs, field.Required(annotations.PathFor(annotations.URISANs),
			"the certificate would name nobody: set uri-sans, dns-names or common-name, or give the pod a Service"))
	}
	return errs
}

// VolumeContext is what the kubelet passes to the driver for pod: the
// injected attributes plus the pod's identity. Before the API server names
// a pod created from generateName, a placeholder suffix stands in.
func VolumeContext(pod *corev1.Pod, attrs map[string]string) map[string]string {
	vc := make(map[string]string, len(attrs)+5)
	maps.Copy(vc, attrs)
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + PlaceholderSuffix
	}
	uid := string(pod.UID)
	if uid == "" {
		uid = placeholderUID
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	vc[csiapi.K8sVolumeContextKeyPodName] = name
	vc[csiapi.K8sVolumeContextKeyPodNamespace] = pod.Namespace
	vc[csiapi.K8sVolumeContextKeyPodUID] = uid
	vc[csiapi.K8sVolumeContextKeyServiceAccountName] = sa
	vc["csi.storage.k8s.io/ephemeral"] = "true"
	return vc
}

// remap moves one of the driver's errors from its attribute onto the
// annotation the user wrote.
func remap(e *field.Error) *field.Error {
	attr := attributeIn(e.Field)
	out := *e
	out.Field = annotations.PathFor(mutate.AnnotationFor(attr)).String()
	out.Detail = strings.TrimSpace("rejected by the cert-manager CSI driver (" + attr + "): " + e.Detail)
	return &out
}

// attributeIn finds the csi.cert-manager.io attribute named in s, the field
// path or message the driver produced.
func attributeIn(s string) string {
	best := ""
	for _, k := range []string{
		csiapi.IssuerNameKey, csiapi.IssuerKindKey, csiapi.IssuerGroupKey, csiapi.CommonNameKey,
		csiapi.DNSNamesKey, csiapi.URISANsKey, csiapi.IPSANsKey, csiapi.DurationKey, csiapi.RenewBeforeKey,
		csiapi.KeyAlgorithmKey, csiapi.KeySizeKey, csiapi.KeyEncodingKey, csiapi.KeyUsagesKey,
		csiapi.CertFileKey, csiapi.KeyFileKey, csiapi.CAFileKey, csiapi.LiteralSubjectKey, csiapi.FSGroupKey,
	} {
		if strings.Contains(s, k) && len(k) > len(best) {
			best = k
		}
	}
	return best
}
