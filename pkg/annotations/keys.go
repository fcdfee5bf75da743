// Package annotations is the user-facing API of mtls-webhook: the pod
// annotations that opt a workload into mTLS and tune the certificate it gets.
//
// Every key lives under the mtls.demo/ prefix. Parse turns a pod's annotations
// into an effective Config, filling gaps from the webhook's Defaults, and
// reports every problem at once as a field.ErrorList whose paths name the
// offending annotation, so `kubectl apply` shows the user exactly what to fix.
package annotations

import "slices"

// Prefix is shared by every annotation this webhook reads or writes. Unknown
// keys under it are reported as warnings, never silently ignored.
const Prefix = "mtls.demo/"

const (
	// Enable opts the pod in. Only "true" and "false" are accepted: a typo
	// such as "yes" is refused rather than quietly leaving the pod in plain
	// text.
	Enable = Prefix + "enable"

	// Issuer names the cert-manager issuer that signs the pod's certificate.
	// Falls back to the webhook's --default-issuer.
	Issuer = Prefix + "issuer"

	// IssuerKind is Issuer (namespaced, the default) or ClusterIssuer.
	IssuerKind = Prefix + "issuer-kind"

	// IssuerGroup is the API group of the issuer; cert-manager.io unless an
	// external issuer is used.
	IssuerGroup = Prefix + "issuer-group"

	// CommonName sets the subject CN. The driver's ${POD_NAME}-style
	// templates are allowed and expanded at mount time.
	CommonName = Prefix + "common-name"

	// DNSNames is a comma list of DNS SANs (templates allowed). When absent,
	// the names are derived from the Services that select the pod.
	DNSNames = Prefix + "dns-names"

	// URISANs is a comma list of URI SANs. The default is the pod's SPIFFE ID,
	// spiffe://<trust-domain>/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}.
	URISANs = Prefix + "uri-sans"

	// Duration is the requested certificate lifetime as a Go duration.
	Duration = Prefix + "duration"

	// RenewBefore is how long before expiry the driver renews; it must be
	// shorter than Duration.
	RenewBefore = Prefix + "renew-before"

	// KeyAlgorithm is ECDSA (the default) or RSA.
	KeyAlgorithm = Prefix + "key-algorithm"

	// KeySize is 256, 384 or 521 for ECDSA and 2048 to 8192 for RSA.
	KeySize = Prefix + "key-size"

	// Containers is a comma list of the containers that get the mount and the
	// env vars; native sidecars (init containers with restartPolicy Always)
	// may be named, other init containers may not. Default: every container
	// except the service-mesh proxies (pkg/mutate's IsMeshProxy).
	Containers = Prefix + "containers"

	// MountPath is the absolute directory where tls.crt, tls.key and ca.crt
	// appear inside the selected containers.
	MountPath = Prefix + "mount-path"

	// FSGroup is the group ID that may read the certificate files: the CSI
	// driver writes them 0440, owned by root and this group. Default: the
	// pod's securityContext.fsGroup, else the runAsGroup the selected
	// containers run as, else the demo image's group when mtls.demo/app
	// swaps the image; with none of these only root can read tls.key.
	FSGroup = Prefix + "fs-group"

	// UseMTLS is written into the USE_MTLS env var: "false" lets the demo
	// apps speak plain HTTP while keeping the certificates mounted.
	UseMTLS = Prefix + "use-mtls"

	// App swaps the target container's image for the reload-capable demo
	// image of that role: "frontend" or "backend".
	App = Prefix + "app"

	// Status is written by the webhook, never by users: "injected-<hash>"
	// records the effective configuration so reinvocation changes nothing.
	Status = Prefix + "status"
)

// known lists every key the webhook understands, in documentation order.
var known = [...]string{
	Enable, Issuer, IssuerKind, IssuerGroup, CommonName, DNSNames, URISANs,
	Duration, RenewBefore, KeyAlgorithm, KeySize, Containers, MountPath,
	FSGroup, UseMTLS, App, Status,
}

// Keys returns every key the webhook understands, in documentation order,
// as the unknown-key warning lists them.
func Keys() []string { return slices.Clone(known[:]) }
