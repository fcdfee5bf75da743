package launchertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
)

// TestWebhookCAInjectorStartupAPICheck runs the webhook, the cainjector and
// startupapicheck with the arguments of cert-manager's chart, each as its
// chart ServiceAccount, behind the chart's own Validating- and
// MutatingWebhookConfiguration (failurePolicy Fail; webhook.url.host points
// them at the launcher on localhost instead of the Service):
//
//   - the webhook creates its CA Secret and serves /healthz and /livez;
//   - before the cainjector runs, the API server cannot trust the webhook
//     and startupapicheck fails;
//   - the cainjector copies the CA into both configurations' caBundle
//     (cert-manager.io/inject-ca-from-secret) and holds its Lease;
//   - startupapicheck then passes, and the webhook really validates (an
//     invalid Certificate is refused) and mutates (a CertificateRequest gets
//     its requester's identity).
func TestWebhookCAInjectorStartupAPICheck(t *testing.T) {
	env := StartEnv(t)
	ctx := context.Background()
	const ns = "cert-manager"
	env.Namespace(t, ns)

	securePort, healthzPort := FreePort(t), FreePort(t)
	objs := Render(t, fmt.Sprintf("webhook.url.host=localhost:%d", securePort))
	env.ApplyRBAC(t, objs)
	vwc := Find(t, objs, "ValidatingWebhookConfiguration", "cert-manager-webhook")
	mwc := Find(t, objs, "MutatingWebhookConfiguration", "cert-manager-webhook")
	for _, o := range []client.Object{vwc.DeepCopy(), mwc.DeepCopy()} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating the chart's %s: %v", o.GetObjectKind().GroupVersionKind().Kind, err)
		}
	}

	wc := ContainerOf(t, Find(t, objs, "Deployment", "cert-manager-webhook"))
	webhookArgs := append(ExpandEnv(wc.Args, ns),
		"--kubeconfig="+env.ServiceAccountKubeconfig(t, ns, "cert-manager-webhook"),
		// The pod's ports (10250, 6080) may be taken on this host.
		fmt.Sprintf("--secure-port=%d", securePort),
		fmt.Sprintf("--healthz-port=%d", healthzPort),
		// The chart adds the url host, with its port, as a DNS name;
		// the API server checks the certificate against "localhost".
		"--dynamic-serving-dns-names=localhost",
	)
	webhook := Start(t, "webhook", webhookArgs...)
	for _, path := range []string{"/healthz", "/livez"} {
		Eventually(t, 60*time.Second, "webhook "+path, func() (bool, error) {
			return httpOK(fmt.Sprintf("http://127.0.0.1:%d%s", healthzPort, path))
		}, webhook)
	}
	var caSecret corev1.Secret
	Eventually(t, 30*time.Second, "the webhook's CA Secret", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cert-manager-webhook-ca"}, &caSecret)
		return err == nil && len(caSecret.Data["ca.crt"]) > 0, err
	}, webhook)
	ca := parseCert(t, caSecret.Data["ca.crt"])
	if !ca.IsCA {
		t.Fatalf("cert-manager-webhook-ca holds a non-CA certificate")
	}

	sc := ContainerOf(t, Find(t, objs, "Job", "cert-manager-startupapicheck"))
	checkKubeconfig := env.ServiceAccountKubeconfig(t, ns, "cert-manager-startupapicheck")
	check := func(extra ...string) (string, error) {
		args := append(append(ExpandEnv(sc.Args, ns), "--kubeconfig="+checkKubeconfig, "--namespace="+ns), extra...)
		cmd := exec.Command(Binary("startupapicheck"), args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	// No caBundle yet: the API server cannot call the webhook, and with
	// failurePolicy Fail nothing passes.
	out, err := check("--wait=0s")
	if err == nil || !strings.Contains(out, "x509") {
		t.Fatalf("startupapicheck before the CA was injected: err=%v, want exit 1 on an x509 error; output:\n%s", err, out)
	}

	cc := ContainerOf(t, Find(t, objs, "Deployment", "cert-manager-cainjector"))
	cainjector := Start(t, "cainjector", append(ExpandEnv(cc.Args, ns),
		"--kubeconfig="+env.ServiceAccountKubeconfig(t, ns, "cert-manager-cainjector"),
		"--metrics-listen-address=0")...)
	Eventually(t, 60*time.Second, "caBundle injected into both webhook configurations", func() (bool, error) {
		var v admissionv1.ValidatingWebhookConfiguration
		var m admissionv1.MutatingWebhookConfiguration
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "cert-manager-webhook"}, &v); err != nil {
			return false, err
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "cert-manager-webhook"}, &m); err != nil {
			return false, err
		}
		return bytes.Equal(v.Webhooks[0].ClientConfig.CABundle, caSecret.Data["ca.crt"]) &&
			bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, caSecret.Data["ca.crt"]), nil
	}, webhook, cainjector)
	Eventually(t, 30*time.Second, "the cainjector holds its Lease", func() (bool, error) {
		var l coordinationv1.Lease
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "cert-manager-cainjector-leader-election"}, &l)
		return err == nil && l.Spec.HolderIdentity != nil, err
	}, cainjector)

	// The chart's own post-install check, with its own arguments.
	out, err = check()
	if err != nil || !strings.Contains(out, "The cert-manager API is ready") {
		t.Fatalf("startupapicheck %q: %v\n%s", sc.Args, err, out)
	}

	// Validation: a Certificate naming nothing to certify.
	bad := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "no-names", Namespace: ns},
		Spec: cmapi.CertificateSpec{SecretName: "x", IssuerRef: cmmeta.IssuerReference{Name: "ca"}}}
	err = env.Client.Create(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), `admission webhook "webhook.cert-manager.io" denied the request`) ||
		!strings.Contains(err.Error(), "dnsNames") {
		t.Fatalf("an invalid Certificate: got %v, want the webhook to deny it naming the missing names", err)
	}
	good := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: ns},
		Spec: cmapi.CertificateSpec{SecretName: "x", DNSNames: []string{"a.example"}, IssuerRef: cmmeta.IssuerReference{Name: "ca"}}}
	if err := env.Client.Create(ctx, good); err != nil {
		t.Fatalf("a valid Certificate was refused: %v", err)
	}

	// Mutation: the webhook records who asked for a CertificateRequest.
	cr := &cmapi.CertificateRequest{ObjectMeta: metav1.ObjectMeta{Name: "who", Namespace: ns},
		Spec: cmapi.CertificateRequestSpec{Request: csrPEM(t), IssuerRef: cmmeta.IssuerReference{Name: "ca"}}}
	if err := env.Client.Create(ctx, cr); err != nil {
		t.Fatal(err)
	}
	if cr.Spec.Username != TestUser || !containsString(cr.Spec.Groups, "system:masters") {
		t.Fatalf("CertificateRequest identity: username %q groups %v, want the test's user", cr.Spec.Username, cr.Spec.Groups)
	}
}

// csrPEM is a PEM certificate request for a.example.
func csrPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"a.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
