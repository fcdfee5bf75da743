package webhook

import (
	"context"
	"fmt"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// IssuerCheckMode says what to do when a pod names an issuer that does not
// exist or is not Ready.
type IssuerCheckMode string

// Issuer check modes (--issuer-check).
const (
	IssuerCheckWarn IssuerCheckMode = "warn"
	IssuerCheckDeny IssuerCheckMode = "deny"
	IssuerCheckOff  IssuerCheckMode = "off"
)

// ParseIssuerCheckMode validates the --issuer-check flag.
func ParseIssuerCheckMode(s string) (IssuerCheckMode, error) {
	switch m := IssuerCheckMode(s); m {
	case IssuerCheckWarn, IssuerCheckDeny, IssuerCheckOff:
		return m, nil
	}
	return "", fmt.Errorf("--issuer-check=%q: must be warn, deny or off", s)
}

// IssuerChecker looks up cert-manager issuers so that a pod naming a missing
// one is flagged at admission instead of hanging in ContainerCreating.
type IssuerChecker struct {
	Reader client.Reader
	Mode   IssuerCheckMode
}

// Check returns a warning (mode warn) or an error (mode deny) when ref is
// missing or not Ready. External issuers (other groups) are not checked.
func (c *IssuerChecker) Check(ctx context.Context, namespace string, ref annotations.IssuerRef) (string, field.ErrorList) {
	if c == nil || c.Mode == IssuerCheckOff || ref.Group != annotations.CertManagerGroup {
		return "", nil
	}
	var (
		obj  client.Object
		key  = types.NamespacedName{Name: ref.Name}
		what = fmt.Sprintf("ClusterIssuer %s", ref.Name)
	)
	switch ref.Kind {
	case annotations.KindClusterIssuer:
		obj = &cmapi.ClusterIssuer{}
	default:
		obj = &cmapi.Issuer{}
		key.Namespace = namespace
		what = fmt.Sprintf("Issuer %s/%s", namespace, ref.Name)
	}
	problem := ""
	switch err := c.Reader.Get(ctx, key, obj); {
	case apierrors.IsNotFound(err):
		problem = what + " does not exist; the pod would wait in ContainerCreating until it does"
	case err != nil:
		// The lookup is advisory: a cache problem must not block pods.
		return fmt.Sprintf("could not check %s: %v", what, err), nil
	case !ready(obj):
		problem = what + " is not Ready; the certificate will not be signed until it is"
	default:
		return "", nil
	}
	if c.Mode == IssuerCheckDeny {
		return "", field.ErrorList{field.Invalid(annotations.PathFor(annotations.Issuer), ref.Name, problem)}
	}
	return problem, nil
}

func ready(obj client.Object) bool {
	var conds []cmapi.IssuerCondition
	switch o := obj.(type) {
	case *cmapi.Issuer:
		conds = o.Status.Conditions
	case *cmapi.ClusterIssuer:
		conds = o.Status.Conditions
	}
	for _, c := range conds {
		if c.Type == cmapi.IssuerConditionReady {
			return c.Status == cmmeta.ConditionTrue
		}
	}
	return false
}
