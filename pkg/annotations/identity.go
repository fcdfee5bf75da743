package annotations

import (
	"os"
	"strings"
)

// Identity is what the CSI driver fills its templates with when the kubelet
// mounts the volume, as far as it is known at admission. Namespace and
// ServiceAccount are always known (the API server sets the default service
// account before webhooks run); the name is not when the pod is created from
// generateName, and the UID never is.
type Identity struct {
	Name           string
	GenerateName   string
	Namespace      string
	ServiceAccount string
}

// GenerateSuffixLen is the length of the random suffix the API server appends
// to generateName: five characters of [a-z0-9], which can add neither a dot nor
// a slash to a name.
const GenerateSuffixLen = 5

// uidLen is the length of a pod UID (a UUID: hex digits and dashes).
const uidLen = 36

// Unknown is the byte Expand writes, in Exact mode, for every character of a
// value not known at admission. No name, URI or admin glob can contain it, so
// a comparison that holds with it holds for every value the API server may
// pick, and one that needs the real value fails.
const Unknown = '\x00'

// ExpandMode says what Expand writes for values not known at admission.
type ExpandMode int

const (
	// Shaped writes placeholders of the real value's shape (same length, same
	// alphabet): right for checking the form of a name.
	Shaped ExpandMode = iota
	// Exact writes Unknown bytes: right for comparing a value with another
	// or matching it against a glob.
	Exact
)

// SPIFFEID returns the pod's own SPIFFE ID in a trust domain, with the real
// namespace and service account: what the driver makes of SPIFFEID(td).
func (id Identity) SPIFFEID(trustDomain string) string {
	return "spiffe://" + trustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// Expand replaces the driver's templates in v with the pod's values. Unknown
// variables are left as they are (Parse refuses them).
func (id Identity) Expand(v string, mode ExpandMode) string {
	if !strings.Contains(v, "$") {
		return v
	}
	return os.Expand(v, func(name string) string {
		switch name {
		case "POD_NAMESPACE":
			return id.Namespace
		case "SERVICE_ACCOUNT_NAME":
			return id.ServiceAccount
		case "POD_NAME":
			if id.Name != "" {
				return id.Name
			}
			return id.GenerateName + unknown(mode, GenerateSuffixLen, "x")
		case "POD_UID":
			return unknown(mode, uidLen, "")
		}
		return "${" + name + "}"
	})
}

func unknown(mode ExpandMode, n int, shaped string) string {
	if mode == Exact {
		return strings.Repeat(string(rune(Unknown)), n)
	}
	if shaped == "" {
		return "00000000-0000-0000-0000-000000000000"[:n]
	}
	return strings.Repeat(shaped, n)
}
