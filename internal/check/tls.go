package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// parseBundle reads the PEM certificates of a caBundle.
func parseBundle(bundle []byte) (*x509.CertPool, error) {
	if len(strings.TrimSpace(string(bundle))) == 0 {
		return nil, errors.New("empty")
	}
	pool := x509.NewCertPool()
	n := 0
	rest := bundle
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%d bytes without a PEM CERTIFICATE block", len(bundle))
	}
	return pool, nil
}

// webhookTLS: the caBundle the API server uses verifies the certificate the
// webhook serves, for the Service name the API server dials.
//
// The certificate is read where the API server would meet it: a TLS dial of
// <service>.<namespace>.svc (in the cluster), else of each ready endpoint's
// pod address (outside the cluster, where Service names do not resolve but
// pod addresses often route). Only when no address answers, as on a laptop
// outside the pod network, is the serving Secret <name>-tls verified
// instead: it is what the pods mount, though a pod may still serve the
// previous certificate for up to a minute after a renewal.
func (c *Checker) webhookTLS(ctx context.Context) Result {
	mwc, w, err := c.mutatingWebhook(ctx)
	if err != nil {
		return fail("%v", err)
	}
	pool, err := parseBundle(w.ClientConfig.CABundle)
	if err != nil {
		return fail("nothing to verify the webhook with: MutatingWebhookConfiguration %s webhook %s has caBundle %v (see %s)", mwc.Name, w.Name, err, WebhookConfig)
	}
	svc := w.ClientConfig.Service
	host := svc.Name + "." + svc.Namespace + ".svc"
	targets := []string{net.JoinHostPort(host, strconv.Itoa(int(ptr.Deref(svc.Port, 443))))}
	if _, eps, err := c.readyEndpoints(ctx); err == nil {
		for _, e := range eps {
			targets = append(targets, net.JoinHostPort(e.addr, strconv.Itoa(int(e.port))))
		}
	}
	var dialErrs []string
	for _, addr := range targets {
		leaf, err := c.dialVerify(ctx, addr, host, pool)
		var verr *tls.CertificateVerificationError
		switch {
		case errors.As(err, &verr):
			return fail("the certificate served at %s is not valid for %s under the caBundle of MutatingWebhookConfiguration %s: %v; the API server refuses it too. cainjector copies the CA of the Certificate in annotation %s (%q): check that it names the serving Certificate and that cert-manager-cainjector runs",
				addr, host, mwc.Name, verr.Err, injectCAFrom, mwc.Annotations[injectCAFrom])
		case err == nil:
			return ok("the certificate served at %s (serial %s, expires %s) is valid for %s under the caBundle",
				addr, leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339), host)
		}
		dialErrs = append(dialErrs, err.Error())
	}
	return c.verifySecret(ctx, host, pool, mwc.Name, strings.Join(dialErrs, "; "))
}

// dialVerify dials addr and verifies the handshake for name under pool.
func (c *Checker) dialVerify(ctx context.Context, addr, name string, pool *x509.CertPool) (*x509.Certificate, error) {
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12})
	defer func() { _ = conn.Close() }()
	if err := conn.HandshakeContext(dctx); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

// verifySecret is the fall-back of webhookTLS when no address answered.
func (c *Checker) verifySecret(ctx context.Context, host string, pool *x509.CertPool, mwc, dialErrs string) Result {
	name := c.Name + "-tls"
	s, err := c.Kube.CoreV1().Secrets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		why := err.Error()
		if apierrors.IsNotFound(err) {
			why = "it does not exist: cert-manager has not issued the serving Certificate " + c.Name + "-serving (kubectl -n " + c.Namespace + " describe certificate " + c.Name + "-serving)"
		}
		return fail("could not reach the webhook (%s), and could not read its serving Secret %s/%s instead: %s", dialErrs, c.Namespace, name, why)
	}
	var certs []*x509.Certificate
	rest := s.Data["tls.crt"]
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if cert, err := x509.ParseCertificate(b.Bytes); err == nil && b.Type == "CERTIFICATE" {
			certs = append(certs, cert)
		}
	}
	if len(certs) == 0 {
		return fail("Secret %s/%s has no certificate in tls.crt: cert-manager has not issued the serving Certificate %s-serving", c.Namespace, name, c.Name)
	}
	inter := x509.NewCertPool()
	for _, cert := range certs[1:] {
		inter.AddCert(cert)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fail("the serving certificate in Secret %s/%s is not valid for %s under the caBundle of MutatingWebhookConfiguration %s: %v; check annotation %s and cert-manager-cainjector",
			c.Namespace, name, host, mwc, err, injectCAFrom)
	}
	return ok("the serving certificate in Secret %s/%s (serial %s, expires %s) is valid for %s under the caBundle (verified from the Secret: the webhook was not reachable from here: %s)",
		c.Namespace, name, leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339), host, dialErrs)
}
