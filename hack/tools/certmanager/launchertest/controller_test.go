package launchertest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
)

// TestController runs the controller launcher with the arguments cert-manager's
// chart gives it (cluster resource namespace, leader election in kube-system,
// solver image, challenge limit), as the chart's ServiceAccount with the
// chart's RBAC, and checks the whole issuance chain:
// a self-signed ClusterIssuer signs a CA Certificate, whose Secret backs a CA
// ClusterIssuer (found through --cluster-resource-namespace) and a CA Issuer,
// which sign leaf Certificates whose Secrets chain to that CA. It also checks
// the Lease, /livez (the chart's liveness probe) and /metrics.
func TestController(t *testing.T) {
	env := StartEnv(t)
	ctx := context.Background()
	const crNS, appNS = "cert-manager", "app"
	env.Namespace(t, crNS)
	env.Namespace(t, appNS)

	// The chart's own Deployment arguments and RBAC: the controller runs as
	// the cert-manager ServiceAccount with what the chart grants it.
	objs := Render(t)
	env.ApplyRBAC(t, objs)
	c := ContainerOf(t, Find(t, objs, "Deployment", "cert-manager"))
	healthz, metrics := FreePort(t), FreePort(t)
	args := append(ExpandEnv(c.Args, crNS),
		"--kubeconfig="+env.ServiceAccountKubeconfig(t, crNS, "cert-manager"),
		// Free ports instead of the defaults (9403, 9402) the pod uses.
		fmt.Sprintf("--internal-healthz-listen-address=127.0.0.1:%d", healthz),
		fmt.Sprintf("--metrics-listen-address=127.0.0.1:%d", metrics),
	)
	for _, want := range []string{"--cluster-resource-namespace=" + crNS, "--leader-election-namespace=kube-system"} {
		if !slices.Contains(args, want) {
			t.Fatalf("the chart no longer passes %s: %q", want, c.Args)
		}
	}
	p := Start(t, "controller", args...)

	Eventually(t, 30*time.Second, "/livez answers 200", func() (bool, error) {
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/livez", healthz))
	}, p)
	Eventually(t, 60*time.Second, "the controller holds the cert-manager-controller Lease", func() (bool, error) {
		var l coordinationv1.Lease
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "cert-manager-controller"}, &l); err != nil {
			return false, err
		}
		return l.Spec.HolderIdentity != nil && strings.HasSuffix(*l.Spec.HolderIdentity, "-external-cert-manager-controller"), nil
	}, p)

	create := func(o client.Object) {
		t.Helper()
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	create(&cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned"},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}})
	create(&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "root", Namespace: crNS},
		Spec: cmapi.CertificateSpec{
			IsCA: true, CommonName: "launcher test root", SecretName: "root-ca",
			PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
			IssuerRef:  cmmeta.IssuerReference{Kind: "ClusterIssuer", Name: "selfsigned"},
		}})
	// The ClusterIssuer finds secretName in --cluster-resource-namespace,
	// the Issuer in its own namespace.
	create(&cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "ca"},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "root-ca"}}}})
	create(&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: crNS},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "root-ca"}}}})
	create(&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "leaf", Namespace: appNS},
		Spec: cmapi.CertificateSpec{
			DNSNames: []string{"backend.app.svc"}, SecretName: "leaf-tls",
			Usages:    []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageClientAuth, cmapi.UsageDigitalSignature},
			IssuerRef: cmmeta.IssuerReference{Kind: "ClusterIssuer", Name: "ca"},
		}})
	create(&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "leaf-ns", Namespace: crNS},
		Spec: cmapi.CertificateSpec{
			DNSNames: []string{"webhook.cert-manager.svc"}, SecretName: "leaf-ns-tls",
			IssuerRef: cmmeta.IssuerReference{Kind: "Issuer", Name: "ca"},
		}})

	ready := func(conds []cmapi.IssuerCondition) bool {
		for _, c := range conds {
			if c.Type == cmapi.IssuerConditionReady && c.Status == cmmeta.ConditionTrue {
				return true
			}
		}
		return false
	}
	certReady := func(ns, name string) func() (bool, error) {
		return func() (bool, error) {
			var c cmapi.Certificate
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &c); err != nil {
				return false, err
			}
			for _, cond := range c.Status.Conditions {
				if cond.Type == cmapi.CertificateConditionReady {
					return cond.Status == cmmeta.ConditionTrue, fmt.Errorf("%s: %s", cond.Reason, cond.Message)
				}
			}
			return false, fmt.Errorf("no Ready condition yet")
		}
	}
	Eventually(t, 60*time.Second, "ClusterIssuer selfsigned Ready", func() (bool, error) {
		var ci cmapi.ClusterIssuer
		err := env.Client.Get(ctx, client.ObjectKey{Name: "selfsigned"}, &ci)
		return err == nil && ready(ci.Status.Conditions), err
	}, p)
	Eventually(t, 60*time.Second, "CA Certificate Ready", certReady(crNS, "root"), p)
	Eventually(t, 60*time.Second, "CA ClusterIssuer and Issuer Ready", func() (bool, error) {
		var ci cmapi.ClusterIssuer
		var is cmapi.Issuer
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "ca"}, &ci); err != nil {
			return false, err
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: crNS, Name: "ca"}, &is); err != nil {
			return false, err
		}
		return ready(ci.Status.Conditions) && ready(is.Status.Conditions), fmt.Errorf("clusterissuer %v, issuer %v", ci.Status.Conditions, is.Status.Conditions)
	}, p)
	Eventually(t, 60*time.Second, "leaf Certificate (CA ClusterIssuer) Ready", certReady(appNS, "leaf"), p)
	Eventually(t, 60*time.Second, "leaf Certificate (CA Issuer) Ready", certReady(crNS, "leaf-ns"), p)

	var rootSecret, leafSecret, leafNSSecret corev1.Secret
	for key, s := range map[client.ObjectKey]*corev1.Secret{
		{Namespace: crNS, Name: "root-ca"}: &rootSecret, {Namespace: appNS, Name: "leaf-tls"}: &leafSecret,
		{Namespace: crNS, Name: "leaf-ns-tls"}: &leafNSSecret,
	} {
		if err := env.Client.Get(ctx, key, s); err != nil {
			t.Fatalf("Secret %s: %v", key, err)
		}
	}
	root := parseCert(t, rootSecret.Data[corev1.TLSCertKey])
	if !root.IsCA || root.Subject.CommonName != "launcher test root" {
		t.Fatalf("root: IsCA=%t CN=%q", root.IsCA, root.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	for name, s := range map[string]*corev1.Secret{"leaf-tls": &leafSecret, "leaf-ns-tls": &leafNSSecret} {
		leaf := parseCert(t, s.Data[corev1.TLSCertKey])
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not chain to the CA: %v", name, err)
		}
		if got := string(s.Data["ca.crt"]); got != string(rootSecret.Data[corev1.TLSCertKey]) {
			t.Errorf("%s: ca.crt is not the root certificate", name)
		}
		if len(s.Data[corev1.TLSPrivateKeyKey]) == 0 {
			t.Errorf("%s: no tls.key", name)
		}
	}
	if leaf := parseCert(t, leafSecret.Data[corev1.TLSCertKey]); len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "backend.app.svc" ||
		len(leaf.ExtKeyUsage) != 2 {
		t.Errorf("leaf: DNS names %v, extended key usages %v", leaf.DNSNames, leaf.ExtKeyUsage)
	}

	// The certificates-metrics controller feeds cert-manager's own metrics.
	Eventually(t, 30*time.Second, "/metrics reports the leaf's expiry", func() (bool, error) {
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics))
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "certmanager_certificate_expiration_timestamp_seconds{") &&
				strings.Contains(line, `issuer_kind="ClusterIssuer",issuer_name="ca",name="leaf",namespace="app"`) {
				return true, nil
			}
		}
		return false, err
	}, p)
	if !strings.Contains(p.Output(), "enabled-but-not-built-in") {
		t.Errorf("the controller did not log which default controllers it leaves out")
	}
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("no PEM certificate in %q", data)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

func httpOK(url string) (bool, error) {
	_, err := httpGet(url)
	return err == nil, err
}
