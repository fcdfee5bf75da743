package check

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

func TestParseIssuerRef(t *testing.T) {
	for in, want := range map[string]IssuerRef{
		"Issuer/demo/demo-ca":                  {Kind: "Issuer", Group: "cert-manager.io", Namespace: "demo", Name: "demo-ca"},
		"ClusterIssuer/mesh":                   {Kind: "ClusterIssuer", Group: "cert-manager.io", Name: "mesh"},
		"Issuer.cert-manager.io/demo/demo-ca":  {Kind: "Issuer", Group: "cert-manager.io", Namespace: "demo", Name: "demo-ca"},
		"ClusterIssuer.cert-manager.io/mesh-1": {Kind: "ClusterIssuer", Group: "cert-manager.io", Name: "mesh-1"},
	} {
		got, err := ParseIssuerRef(in)
		if err != nil || got != want {
			t.Errorf("ParseIssuerRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"Issuer/demo-ca":              "want Issuer/<namespace>/<name>",
		"ClusterIssuer/ns/mesh":       "want Issuer/<namespace>/<name> or ClusterIssuer/<name>",
		"Certificate/demo/x":          "want Issuer/<namespace>/<name>",
		"Issuer//x":                   "want Issuer/<namespace>/<name>",
		"Issuer.example.com/demo/aws": `only cert-manager.io issuers can be checked, not group "example.com"`,
	} {
		if _, err := ParseIssuerRef(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseIssuerRef(%q) error = %v, want one containing %q", in, err, wantErr)
		}
	}
}

func TestParseFlagsReadsBothForms(t *testing.T) {
	got := ParseFlags([]string{"serve", "--port=9443", "--default-issuer=ca", "--default-issuer-kind", "ClusterIssuer",
		"-allowed-issuers=ClusterIssuer/ca,Issuer/*", "--log-level=info"})
	want := map[string]string{FlagDefaultIssuer: "ca", FlagDefaultIssuerKind: "ClusterIssuer", FlagAllowedIssuers: "ClusterIssuer/ca,Issuer/*"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseFlags (-want +got):\n%s", d)
	}
}

func TestReportFormats(t *testing.T) {
	rep := Report{Namespace: "mtls-system", Name: "mtls-webhook", Checks: []Result{
		{Name: CSIDriver, Status: OK, Message: "fine"},
		{Name: Issuers, Status: Warn, Message: "one\nlooks odd"},
		{Name: WebhookPods, Status: Fail, Message: "scaled to 0"},
	}}
	if got := rep.Failed(); !cmp.Equal(got, []string{WebhookPods}) {
		t.Errorf("Failed() = %v", got)
	}
	var tbl bytes.Buffer
	if err := rep.Write(&tbl, Table); err != nil {
		t.Fatal(err)
	}
	want := "CHECK        STATUS  MESSAGE\n" +
		"csi-driver   ok      fine\n" +
		"issuers      warn    one looks odd\n" +
		"webhook-pods fail    scaled to 0\n" +
		"\nFAIL: mtls-webhook mtls-system/mtls-webhook: 1 ok, 1 warning(s), 1 failed\n"
	// tabwriter pads to the longest cell plus two.
	want = strings.Replace(want, "CHECK        ", "CHECK         ", 1)
	want = strings.Replace(want, "csi-driver   ", "csi-driver    ", 1)
	want = strings.Replace(want, "issuers      ", "issuers       ", 1)
	want = strings.Replace(want, "webhook-pods ", "webhook-pods  ", 1)
	if d := cmp.Diff(want, tbl.String()); d != "" {
		t.Errorf("table (-want +got):\n%s", d)
	}
	var js bytes.Buffer
	if err := rep.Write(&js, JSON); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(rep, back); d != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", d)
	}
	for _, key := range []string{`"checks"`, `"name": "webhook-pods"`, `"status": "fail"`, `"ok": false`} {
		if !strings.Contains(js.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, js.String())
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), `-o="yaml": must be table or json`) {
		t.Errorf("ParseFormat(yaml) = %v", err)
	}
}

// pki is a CA and a serving certificate for the webhook's Service name.
type pki struct {
	caPEM, certPEM []byte
	cert           tls.Certificate
}

func newPKI(t *testing.T, dnsName string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xbeef), DNSNames: []string{dnsName}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	p := pki{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	p.cert, err = tls.X509KeyPair(p.certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serveTLS listens on loopback with the certificate and returns a Dial
// that sends every address there.
func serveTLS(t *testing.T, cert tls.Certificate) func(ctx context.Context, network, addr string) (net.Conn, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
	}
}

func noRoute(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no route to host")
}

const (
	ns   = "mtls-system"
	name = "mtls-webhook"
	host = "mtls-webhook.mtls-system.svc"
)

// cluster is a fake API holding a healthy install; tests break parts of it.
func cluster(t *testing.T, p pki) (*fake.Clientset, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	kube := fake.NewClientset(
		&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: mutate.Driver}, Spec: storagev1.CSIDriverSpec{
			PodInfoOnMount: ptr.To(true), VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral}}},
		&storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: mutate.Driver, NodeID: "node-a"}}}},
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{injectCAFrom: ns + "/" + name + "-serving"}},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "inject.mtls.demo", ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Name: name, Namespace: ns, Port: ptr.To[int32](443)}, CABundle: p.caPEM}}},
		},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "webhook", Args: []string{"serve", "--default-issuer=", "--allowed-issuers="}}}}}},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name + "-x", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](9443)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-tls", Namespace: ns}, Data: map[string][]byte{"tls.crt": p.certPEM}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}},
	)
	kube.Resources = []*metav1.APIResourceList{{GroupVersion: "cert-manager.io/v1", APIResources: []metav1.APIResource{
		{Name: "certificates"}, {Name: "certificaterequests"}, {Name: "issuers"}, {Name: "clusterissuers"}}}}
	// The fake API runs no admission; this stands in for the webhook so
	// that the checker's reading of an injected pod can be tested.
	kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod).DeepCopy()
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: mutate.Driver, VolumeAttributes: map[string]string{"csi.cert-manager.io/issuer-name": pod.Annotations["mtls.demo/issuer"]}}}})
		c := &pod.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: mutate.VolumeName, MountPath: "/var/run/mtls"})
		for _, e := range []string{"MTLS_CERT_FILE", "MTLS_KEY_FILE", "MTLS_CA_FILE"} {
			c.Env = append(c.Env, corev1.EnvVar{Name: e, Value: "x"})
		}
		return true, pod, nil
	})
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		issuersGVR: "IssuerList", clusterIssuersGVR: "ClusterIssuerList", certificatesGVR: "CertificateList",
	}, issuer("Issuer", "demo", "demo-ca", "True"))
	return kube, dyn
}

func issuer(kind, namespace, name, ready string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type": "Ready", "status": ready, "reason": "ErrGetKeyPair", "message": "secret \"x\" not found"}}},
	}}
	if namespace == "" {
		unstructured.RemoveNestedField(u.Object, "metadata", "namespace")
	}
	return u
}

func run(t *testing.T, kube *fake.Clientset, dyn *dynamicfake.FakeDynamicClient, o Options) Report {
	t.Helper()
	o.Namespace, o.Name = ns, name
	if o.CanaryNamespace == "" {
		o.CanaryNamespace = "demo"
	}
	if o.Timeout == 0 {
		o.Timeout = 300 * time.Millisecond
	}
	o.Interval = 100 * time.Millisecond
	c := &Checker{Kube: kube, Dynamic: dyn, Options: o}
	return c.Run(context.Background())
}

func statuses(rep Report) map[string]Status {
	out := map[string]Status{}
	for _, r := range rep.Checks {
		out[r.Name] = r.Status
	}
	return out
}

func wantResult(t *testing.T, rep Report, check string, status Status, inMessage ...string) {
	t.Helper()
	r, found := rep.Get(check)
	if !found {
		t.Fatalf("no check %s in %v", check, rep.Checks)
	}
	if r.Status != status {
		t.Errorf("%s: status %s, want %s: %s", check, r.Status, status, r.Message)
	}
	for _, s := range inMessage {
		if !strings.Contains(r.Message, s) {
			t.Errorf("%s: message lacks %q: %s", check, s, r.Message)
		}
	}
}

func TestHealthyInstallPasses(t *testing.T) {
	p := newPKI(t, host)
	kube, dyn := cluster(t, p)
	rep := run(t, kube, dyn, Options{CanaryIssuer: "demo-ca", Dial: serveTLS(t, p.cert)})
	want := map[string]Status{CertManagerAPI: OK, CSIDriver: OK, WebhookConfig: OK, WebhookTLS: OK, WebhookPods: OK,
		WebhookInjects: OK, Issuers: OK, BypassedPods: OK}
	if d := cmp.Diff(want, statuses(rep)); d != "" || !rep.OK {
		t.Errorf("statuses (-want +got):\n%s\n%v", d, rep.Checks)
	}
	wantResult(t, rep, WebhookTLS, OK, "served at "+host+":443", "serial beef")
	wantResult(t, rep, WebhookInjects, OK, `issuer "demo-ca"`)
	wantResult(t, rep, Issuers, OK, "1 issuer(s) Ready: Issuer demo/demo-ca")
}

// Off the pod network the served certificate cannot be dialled; the
// serving Secret is verified instead, and the message says so.
func TestTLSFallsBackToTheSecret(t *testing.T) {
	p := newPKI(t, host)
	kube, dyn := cluster(t, p)
	rep := run(t, kube, dyn, Options{Dial: noRoute})
	wantResult(t, rep, WebhookTLS, OK, "Secret mtls-system/mtls-webhook-tls", "verified from the Secret", "no route to host")

	other := newPKI(t, host)
	kube, dyn = cluster(t, p)
	s, _ := kube.CoreV1().Secrets(ns).Get(context.Background(), name+"-tls", metav1.GetOptions{})
	s.Data["tls.crt"] = other.certPEM
	if _, err := kube.CoreV1().Secrets(ns).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep = run(t, kube, dyn, Options{Dial: noRoute})
	wantResult(t, rep, WebhookTLS, Fail, "not valid for "+host, "certificate signed by unknown authority")
}

// A webhook serving a certificate from another CA than the caBundle's.
func TestTLSRefusesACertificateFromAnotherCA(t *testing.T) {
	p, other := newPKI(t, host), newPKI(t, host)
	kube, dyn := cluster(t, p)
	rep := run(t, kube, dyn, Options{Dial: serveTLS(t, other.cert)})
	wantResult(t, rep, WebhookTLS, Fail, "served at "+host+":443 is not valid", "unknown authority", injectCAFrom)
	if rep.OK {
		t.Error("report OK with a failed check")
	}
}

func TestBrokenInstalls(t *testing.T) {
	for _, c := range []struct {
		name   string
		breakI func(t *testing.T, kube *fake.Clientset, dyn *dynamicfake.FakeDynamicClient)
		opts   Options
		check  string
		status Status
		msg    []string
		// also are the checks that fail with it, for the same cause.
		also []string
	}{
		{
			name: "caBundle removed",
			breakI: func(t *testing.T, kube *fake.Clientset, _ *dynamicfake.FakeDynamicClient) {
				m, _ := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), name, metav1.GetOptions{})
				m.Webhooks[0].ClientConfig.CABundle = nil
				if _, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(context.Background(), m, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: WebhookConfig, status: Fail,
			msg:  []string{"webhooks[0] (inject.mtls.demo) clientConfig.caBundle: empty", `cert-manager.io/inject-ca-from (now "mtls-system/mtls-webhook-serving")`},
			also: []string{WebhookTLS},
		},
		{
			name: "webhook scaled to 0",
			breakI: func(t *testing.T, kube *fake.Clientset, _ *dynamicfake.FakeDynamicClient) {
				d, _ := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
				d.Spec.Replicas, d.Status.ReadyReplicas = ptr.To[int32](0), 0
				if _, err := kube.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: WebhookPods, status: Fail,
			msg: []string{"Deployment mtls-system/mtls-webhook is scaled to 0 replicas", "kubectl -n mtls-system scale deployment/mtls-webhook"},
		},
		{
			name: "no ready endpoint",
			breakI: func(t *testing.T, kube *fake.Clientset, _ *dynamicfake.FakeDynamicClient) {
				if err := kube.DiscoveryV1().EndpointSlices(ns).Delete(context.Background(), name+"-x", metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: WebhookPods, status: Fail, msg: []string{"Service mtls-system/mtls-webhook has no ready endpoints"},
		},
		{
			name: "CSIDriver missing",
			breakI: func(t *testing.T, kube *fake.Clientset, _ *dynamicfake.FakeDynamicClient) {
				if err := kube.StorageV1().CSIDrivers().Delete(context.Background(), mutate.Driver, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: CSIDriver, status: Fail, msg: []string{"CSIDriver csi.cert-manager.io not found"},
		},
		{
			name: "driver registered on no node",
			breakI: func(t *testing.T, kube *fake.Clientset, _ *dynamicfake.FakeDynamicClient) {
				n := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
				if _, err := kube.StorageV1().CSINodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: CSIDriver, status: Fail, msg: []string{"no node registered it"},
		},
		{
			name: "required Issuer not Ready",
			breakI: func(t *testing.T, _ *fake.Clientset, dyn *dynamicfake.FakeDynamicClient) {
				if _, err := dyn.Resource(issuersGVR).Namespace("other").Create(context.Background(), issuer("Issuer", "other", "broken", "False"), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			opts:  Options{RequiredIssuers: []IssuerRef{{Kind: "Issuer", Group: "cert-manager.io", Namespace: "other", Name: "broken"}}},
			check: Issuers, status: Fail,
			msg: []string{`Issuer other/broken (--required-issuers) is not Ready: Ready=False, reason ErrGetKeyPair: secret "x" not found`},
		},
		{
			name:  "required ClusterIssuer missing",
			opts:  Options{RequiredIssuers: []IssuerRef{{Kind: "ClusterIssuer", Group: "cert-manager.io", Name: "mesh"}}},
			check: Issuers, status: Fail, msg: []string{"ClusterIssuer mesh (--required-issuers) not found"},
		},
		{
			name:  "default ClusterIssuer from the webhook's flags missing",
			opts:  Options{WebhookFlags: map[string]string{FlagDefaultIssuer: "mesh", FlagDefaultIssuerKind: "ClusterIssuer", FlagAllowedIssuers: "ClusterIssuer/mesh"}},
			check: Issuers, status: Fail, msg: []string{"ClusterIssuer mesh (--default-issuer) not found"},
		},
		{
			name: "an Issuer of the default issuer's name not Ready",
			breakI: func(t *testing.T, _ *fake.Clientset, dyn *dynamicfake.FakeDynamicClient) {
				if _, err := dyn.Resource(issuersGVR).Namespace("other").Create(context.Background(), issuer("Issuer", "other", "demo-ca", "False"), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			opts:  Options{WebhookFlags: map[string]string{FlagDefaultIssuer: "demo-ca"}},
			check: Issuers, status: Fail,
			msg: []string{"Issuer other/demo-ca (--default-issuer) is not Ready", "1 issuer(s) Ready: Issuer demo/demo-ca"},
		},
		{
			name:  "a default Issuer no namespace has is a warning",
			opts:  Options{WebhookFlags: map[string]string{FlagDefaultIssuer: "nowhere", FlagDefaultIssuerKind: "Issuer"}},
			check: Issuers, status: Warn,
			msg: []string{`no namespace has an Issuer named "nowhere" (--default-issuer)`},
		},
		{
			name: "an allowed but unnamed Issuer not Ready is a warning",
			breakI: func(t *testing.T, _ *fake.Clientset, dyn *dynamicfake.FakeDynamicClient) {
				if _, err := dyn.Resource(issuersGVR).Namespace("other").Create(context.Background(), issuer("Issuer", "other", "broken", "False"), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: Issuers, status: Warn, msg: []string{`Issuer other/broken (allowed by "Issuer/*") is not Ready`, "1 issuer(s) Ready: Issuer demo/demo-ca"},
		},
		{
			name: "opted-in pod without the volume",
			breakI: func(t *testing.T, kube *fake.Clientset, _ *dynamicfake.FakeDynamicClient) {
				for _, p := range []*corev1.Pod{
					{ObjectMeta: metav1.ObjectMeta{Name: "bypassed", Namespace: "demo", Annotations: map[string]string{"mtls.demo/enable": "true"}},
						Status: corev1.PodStatus{Phase: corev1.PodRunning}},
					{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "demo", Annotations: map[string]string{"mtls.demo/enable": "true"}},
						Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
					{ObjectMeta: metav1.ObjectMeta{Name: "opted-out", Namespace: "demo", Annotations: map[string]string{"mtls.demo/enable": "false"}}},
				} {
					if err := kube.Tracker().Add(p); err != nil {
						t.Fatal(err)
					}
				}
			},
			check: BypassedPods, status: Warn, msg: []string{"1 of 1 opted-in pod(s) run without a csi.cert-manager.io volume", "demo/bypassed;"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPKI(t, host)
			kube, dyn := cluster(t, p)
			if c.breakI != nil {
				c.breakI(t, kube, dyn)
			}
			o := c.opts
			o.Dial = serveTLS(t, p.cert)
			rep := run(t, kube, dyn, o)
			wantResult(t, rep, c.check, c.status, c.msg...)
			if wantOK := c.status != Fail; rep.OK != wantOK {
				t.Errorf("report OK = %v, want %v", rep.OK, wantOK)
			}
			// Only the broken part is reported.
			for _, r := range rep.Checks {
				if r.Name != c.check && r.Status != OK && !slices.Contains(c.also, r.Name) {
					t.Errorf("%s: %s: %s", r.Name, r.Status, r.Message)
				}
			}
		})
	}
}

// A failing check is retried until the deadline and then reported once;
// one that recovers meanwhile is reported as it ends.
func TestFailuresAreRetriedUntilTheTimeout(t *testing.T) {
	p := newPKI(t, host)
	kube, dyn := cluster(t, p)
	d, _ := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	d.Status.ReadyReplicas = 0
	if _, err := kube.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		d.Status.ReadyReplicas = 2
		_, _ = kube.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
	}()
	var progress bytes.Buffer
	start := time.Now()
	rep := run(t, kube, dyn, Options{Dial: serveTLS(t, p.cert), Timeout: 5 * time.Second, Progress: &progress})
	wantResult(t, rep, WebhookPods, OK, "2 of 2 replicas Ready")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("run took %s although every check passed after 300ms", took)
	}
	if !strings.Contains(progress.String(), "check: webhook-pods: Deployment mtls-system/mtls-webhook has 0 of 2 replicas Ready") {
		t.Errorf("no progress line for the retried check: %q", progress.String())
	}
}

// Without issuer flags of its own, check learns the default and allowed
// issuers from the webhook Deployment's args.
func TestIssuersAreReadFromTheWebhookArgs(t *testing.T) {
	p := newPKI(t, host)
	kube, dyn := cluster(t, p)
	d, _ := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	d.Spec.Template.Spec.Containers[0].Args = []string{"serve", "--default-issuer=mesh", "--default-issuer-kind=ClusterIssuer",
		"--default-issuer-group=cert-manager.io", "--allowed-issuers=ClusterIssuer/mesh"}
	if _, err := kube.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep := run(t, kube, dyn, Options{Dial: serveTLS(t, p.cert)})
	wantResult(t, rep, Issuers, Fail, "ClusterIssuer mesh (--default-issuer) not found")

	if _, err := dyn.Resource(clusterIssuersGVR).Create(context.Background(), issuer("ClusterIssuer", "", "mesh", "True"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep = run(t, kube, dyn, Options{Dial: serveTLS(t, p.cert)})
	// Only what the args allow is checked: demo/demo-ca is not.
	wantResult(t, rep, Issuers, OK, "1 issuer(s) Ready: ClusterIssuer mesh")
}
