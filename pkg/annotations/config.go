package annotations

import "time"

// cert-manager's API group and issuer kinds, spelt out here so that the
// annotation API does not drag cert-manager's packages into every importer.
const (
	CertManagerGroup  = "cert-manager.io"
	KindIssuer        = "Issuer"
	KindClusterIssuer = "ClusterIssuer"
)

// Key algorithms accepted by KeyAlgorithm, in the spelling the CSI driver
// expects.
const (
	AlgorithmECDSA = "ECDSA"
	AlgorithmRSA   = "RSA"
)

// Demo roles accepted by App.
const (
	AppFrontend = "frontend"
	AppBackend  = "backend"
)

// MaxFSGroup is the largest group ID the CSI driver accepts for FSGroup.
const MaxFSGroup = 4294967295

// DefaultMountPath is where the certificate files appear when MountPath is
// not set.
const DefaultMountPath = "/var/run/mtls"

// IssuerRef names the cert-manager issuer that signs a pod's certificate.
type IssuerRef struct {
	Name  string
	Kind  string
	Group string
}

// Config is the effective, validated configuration of one opted-in pod:
// every field is set, either from an annotation or from Defaults.
type Config struct {
	// Enabled is false when the pod did not opt in; the other fields are then
	// zero and the pod must be left alone.
	Enabled bool

	Issuer IssuerRef

	// CommonName is empty unless the user asked for one.
	CommonName string
	// DNSNames is nil when the names must be derived from Services.
	DNSNames []string
	// URISANs starts with the pod's SPIFFE ID, SPIFFEID(trust domain),
	// followed by the URIs of mtls.demo/uri-sans; the policy decides whether
	// those may be added.
	URISANs []string

	Duration    time.Duration
	RenewBefore time.Duration

	KeyAlgorithm string
	KeySize      int

	// Containers is nil when every (non-init) container is selected.
	Containers []string
	MountPath  string
	// FSGroup is nil unless the user set mtls.demo/fs-group; the mutation
	// then derives the group from the pod.
	FSGroup *int64
	UseMTLS bool
	// App is "", AppFrontend or AppBackend.
	App string
}

// Defaults holds the webhook-wide settings (its command-line flags) that
// apply where a pod's annotations are silent.
type Defaults struct {
	Issuer      IssuerRef
	Duration    time.Duration
	RenewBefore time.Duration
	// TrustDomain is the SPIFFE trust domain of the pod's SPIFFE ID.
	TrustDomain string
	// Limits cap what an annotation may ask for; zero fields mean the
	// defaults.
	Limits Limits
}

// NewDefaults returns the defaults the webhook starts with when no flag
// overrides them: a namespaced cert-manager Issuer chosen per pod, 24h
// certificates renewed 8h before expiry, trust domain cluster.local.
func NewDefaults() Defaults {
	return Defaults{
		Issuer:      IssuerRef{Kind: KindIssuer, Group: CertManagerGroup},
		Duration:    24 * time.Hour,
		RenewBefore: 8 * time.Hour,
		TrustDomain: "cluster.local",
		Limits:      NewLimits(),
	}
}

// SPIFFEID returns the pod's SPIFFE ID in a trust domain, as a template: the
// CSI driver expands it when it mounts the volume, from the namespace and
// service account the kubelet reports, so no annotation can change them.
func SPIFFEID(trustDomain string) string {
	return "spiffe://" + trustDomain + "/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}"
}
