package demo

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The demo chart's two CAs (helm/mtls-demo/templates/pki.yaml) for the
// release Install creates: the root, which keeps its key when renewed,
// and the issuing CA, which rotates it.
const (
	RootCACertificate    = "mtls-demo-root-ca"
	RootCASecret         = "mtls-demo-root-ca"
	IssuingCACertificate = "demo-ca"
	IssuingCASecret      = "demo-ca-tls"
)

// RenewCertificate asks cert-manager to re-issue a Certificate now, as
// `cmctl renew` does: it adds an Issuing condition to the status.
func RenewCertificate(ctx context.Context, c client.Client, namespace, name string) error {
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		crt := &unstructured.Unstructured{}
		crt.SetAPIVersion("cert-manager.io/v1")
		crt.SetKind("Certificate")
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, crt); err != nil {
			return fmt.Errorf("certificate %s/%s: %w", namespace, name, err)
		}
		conds, _, _ := unstructured.NestedSlice(crt.Object, "status", "conditions")
		conds = append(conds, map[string]any{
			"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
			"message":            "re-issuance requested by the mtls-webhook demo",
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		})
		if err := unstructured.SetNestedSlice(crt.Object, conds, "status", "conditions"); err != nil {
			return err
		}
		if lastErr = c.Status().Update(ctx, crt); lastErr == nil {
			return nil
		}
		// A conflict with cert-manager's own status update: read again.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("renew certificate %s/%s: %w", namespace, name, lastErr)
}

// SecretCertificate returns the first certificate of a Secret's tls.crt.
func SecretCertificate(ctx context.Context, c client.Client, namespace, name string) (*x509.Certificate, error) {
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sec); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(sec.Data["tls.crt"])
	if block == nil {
		return nil, fmt.Errorf("secret %s/%s: no PEM certificate in tls.crt", namespace, name)
	}
	return x509.ParseCertificate(block.Bytes)
}

// CARenewal is one renewal of a CA of the demo: what was asked, and what
// cert-manager then wrote.
type CARenewal struct {
	Certificate string
	Before      *x509.Certificate
	After       *x509.Certificate
}

// KeyChanged reports whether the renewal gave the CA a new key.
func (r CARenewal) KeyChanged() bool {
	return !bytes.Equal(r.Before.RawSubjectPublicKeyInfo, r.After.RawSubjectPublicKeyInfo)
}

// RenewCA renews the CA Certificate name, whose key pair is in secret, and
// waits up to timeout for the Secret to hold the new certificate.
func (r *Release) RenewCA(ctx context.Context, name, secret string, timeout time.Duration) (CARenewal, error) {
	c, ns := r.e.Client, r.Opts.Namespace
	before, err := SecretCertificate(ctx, c, ns, secret)
	if err != nil {
		return CARenewal{}, err
	}
	if err := RenewCertificate(ctx, c, ns, name); err != nil {
		return CARenewal{}, err
	}
	deadline := time.Now().Add(timeout)
	for {
		after, err := SecretCertificate(ctx, c, ns, secret)
		if err == nil && after.SerialNumber.Cmp(before.SerialNumber) != 0 {
			return CARenewal{Certificate: name, Before: before, After: after}, nil
		}
		if time.Now().After(deadline) {
			return CARenewal{}, errors.Join(fmt.Errorf("secret %s/%s still holds serial %s %s after renewing %s", ns, secret, before.SerialNumber, timeout, name), err)
		}
		select {
		case <-ctx.Done():
			return CARenewal{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
