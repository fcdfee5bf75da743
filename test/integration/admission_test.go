package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// TestChartWebhookSettings pins the settings of the chart's webhook that
// the other tests rely on, so a chart change that weakens them fails here
// by name rather than as a puzzling behaviour change elsewhere.
func TestChartWebhookSettings(t *testing.T) {
	mwc := chart.RenderWebhookChart(t, chart.HelmBinary(t), chart.Options{})
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("chart renders %d webhooks, want 1", len(mwc.Webhooks))
	}
	wh := mwc.Webhooks[0]
	if wh.Name != "inject.mtls.demo" {
		t.Errorf("webhook name %q, want inject.mtls.demo", wh.Name)
	}
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy %v, want Fail: an opted-in pod must never start without its certificate", wh.FailurePolicy)
	}
	if wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("sideEffects %v, want None (dry runs must reach the webhook)", wh.SideEffects)
	}
	if wh.ReinvocationPolicy == nil || *wh.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("reinvocationPolicy %v, want IfNeeded", wh.ReinvocationPolicy)
	}
	if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds < 1 || *wh.TimeoutSeconds > 10 {
		t.Errorf("timeoutSeconds %v, want a short timeout (1-10s)", wh.TimeoutSeconds)
	}
	if len(wh.MatchConditions) == 0 || !strings.Contains(wh.MatchConditions[0].Expression, annotations.Enable) {
		t.Errorf("matchConditions %+v, want a condition on %s", wh.MatchConditions, annotations.Enable)
	}
	createsPods := false
	for _, r := range wh.Rules {
		if slices.Contains(r.Operations, admissionregistrationv1.Create) && slices.Contains(r.Resources, "pods") {
			createsPods = true
		}
		if slices.Contains(r.Operations, admissionregistrationv1.Update) {
			t.Errorf("rule %+v intercepts UPDATE; the webhook only mutates pod creation", r)
		}
	}
	if !createsPods {
		t.Errorf("rules %+v do not intercept pod CREATE", wh.Rules)
	}
	var excluded []string
	if wh.NamespaceSelector != nil {
		for _, e := range wh.NamespaceSelector.MatchExpressions {
			if e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpNotIn {
				excluded = e.Values
			}
		}
	}
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", "mtls-system"} {
		if !slices.Contains(excluded, ns) {
			t.Errorf("namespaceSelector does not exclude %s (excluded: %v)", ns, excluded)
		}
	}
}

// TestDeploymentPodsAreInjected: the controller manager creates the pods of
// an annotated Deployment, the API server sends them to the webhook, and it
// stores them with the volume, mounts and env vars — which also proves the
// API server's own pod validation accepts what the webhook returns.
func TestDeploymentPodsAreInjected(t *testing.T) {
	cs, warns, c := clients(t)
	ns := namespace(t, cs, "deploy", nil)
	createIssuer(t, c, ns, "ca", cmmeta.ConditionTrue)
	installChartWebhook(t, cs, "deploy", ns)

	replicas := int32(3)
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: optIn("ca")},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "web", Image: "registry.example/web:1"},
					{Name: "metrics", Image: "registry.example/metrics:1"},
				}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctxFor(t, 10*time.Second), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	eventually(t, 60*time.Second, "the controller manager to create 3 pods", func(ctx context.Context) error {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		pods = list.Items
		if len(pods) != int(replicas) {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})
	for i := range pods {
		p := &pods[i]
		if len(p.OwnerReferences) == 0 || p.OwnerReferences[0].Kind != "ReplicaSet" {
			t.Errorf("pod %s owners %+v, want a ReplicaSet (made by the controller manager)", p.Name, p.OwnerReferences)
		}
		assertInjected(t, p, "ca", annotations.DefaultMountPath)
	}
	if w := warns.Take(); len(w) != 0 {
		t.Errorf("unexpected warnings: %q", w)
	}
	// The Deployment's own template is not a pod: it stays as written, so
	// the Deployment does not fight the webhook.
	got, err := cs.AppsV1().Deployments(ns).Get(ctxFor(t, 10*time.Second), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.Spec.Template.Spec.Volumes); n != 0 {
		t.Errorf("Deployment template has %d volumes, want 0", n)
	}
}

// TestUnannotatedPodsNeverReachWebhook: the chart's matchConditions keep
// pods that did not opt in away from the webhook entirely (so its failure
// policy cannot block them), which the webhook's own admission counter
// shows, and they are stored exactly as sent.
func TestUnannotatedPodsNeverReachWebhook(t *testing.T) {
	cs, _, c := clients(t)
	ns := namespace(t, cs, "plain", nil)
	createIssuer(t, c, ns, "ca", cmmeta.ConditionTrue)
	installChartWebhook(t, cs, "plain", ns)
	ctx := ctxFor(t, 30*time.Second)

	before := admissions(t, suite.metricsURL)
	for _, tc := range []struct {
		name string
		ann  map[string]string
	}{
		{"no-annotations", nil},
		{"other-annotations", map[string]string{"team": "payments", "mtls.demo/issuer": "ca"}},
		{"enable-false", map[string]string{annotations.Enable: "false", annotations.Issuer: "ca"}},
	} {
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod(tc.name, tc.ann), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		assertUntouched(t, got, tc.ann)
	}
	after := admissions(t, suite.metricsURL)
	if d := total(after) - total(before); d != 0 {
		t.Errorf("the webhook saw %v admission reviews for pods that did not opt in, want 0 (before %v, after %v)", d, before, after)
	}

	// The counter does move for an opted-in pod, so the zero above means
	// something.
	got, err := cs.CoreV1().Pods(ns).Create(ctx, pod("opted-in", optIn("ca")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertInjected(t, got, "ca", annotations.DefaultMountPath)
	final := admissions(t, suite.metricsURL)
	if d := final[webhookResultInjected] - after[webhookResultInjected]; d != 1 {
		t.Errorf("injected counter moved by %v for one opted-in pod, want 1", d)
	}
}

const webhookResultInjected = "injected"

// TestBadAnnotationsAreRefused: invalid annotations are refused at
// creation with kubectl-style errors naming the annotation and the value,
// and nothing is stored.
func TestBadAnnotationsAreRefused(t *testing.T) {
	cs, _, c := clients(t)
	ns := namespace(t, cs, "bad", nil)
	createIssuer(t, c, ns, "ca", cmmeta.ConditionTrue)
	installChartWebhook(t, cs, "bad", ns)

	field := func(key string) string { return "metadata.annotations[" + annotations.Prefix + key + "]" }
	for _, tc := range []struct {
		name string
		ann  map[string]string
		mod  func(*corev1.Pod)
		want []string
	}{
		{"enable-yes", map[string]string{annotations.Enable: "yes", annotations.Issuer: "ca"}, nil,
			[]string{field("enable"), `"yes"`}},
		{"duration-forever", optIn("ca", "duration", "forever"), nil,
			[]string{field("duration"), `"forever"`}},
		{"renew-equal-duration", optIn("ca", "duration", "1h", "renew-before", "1h"), nil,
			[]string{field("renew-before"), `"1h"`, "shorter than the certificate duration"}},
		{"renew-longer-than-duration", optIn("ca", "duration", "1h", "renew-before", "2h"), nil,
			[]string{field("renew-before"), `"2h"`}},
		{"rsa-1024", optIn("ca", "key-algorithm", "RSA", "key-size", "1024"), nil,
			[]string{field("key-size"), `"1024"`}},
		{"dsa", optIn("ca", "key-algorithm", "DSA"), nil,
			[]string{field("key-algorithm"), `"DSA"`}},
		{"missing-container", optIn("ca", "containers", "sidecar"), nil,
			[]string{field("containers"), `"sidecar"`}},
		{"relative-mount-path", optIn("ca", "mount-path", "certs"), nil,
			[]string{field("mount-path"), `"certs"`}},
		{"root-mount-path", optIn("ca", "mount-path", "/"), nil,
			[]string{field("mount-path"), `"/"`}},
		{"bad-dns-name", optIn("ca", "dns-names", "Bad_Name"), nil,
			[]string{field("dns-names"), `"Bad_Name"`}},
		{"bad-uri", optIn("ca", "uri-sans", "::"), nil,
			[]string{field("uri-sans"), `"::"`}},
		{"issuer-kind-foo", optIn("ca", "issuer-kind", "Foo"), nil,
			[]string{field("issuer-kind"), `"Foo"`}},
		{"cluster-issuer-not-allowed", optIn("mesh-ca", "issuer-kind", "ClusterIssuer"), nil,
			[]string{field("issuer"), "ClusterIssuer/mesh-ca", "--allowed-issuers"}},
		{"app-database", optIn("ca", "app", "database"), nil,
			[]string{field("app"), `"database"`}},
		// Issue 12: names that are not the pod's own, and what a pod may cost.
		{"other-namespace-spiffe-id", optIn("ca", "uri-sans", "spiffe://cluster.local/ns/bank/sa/frontend"), nil,
			[]string{field("uri-sans"), `"spiffe://cluster.local/ns/bank/sa/frontend"`, "a pod's only SPIFFE ID is its own"}},
		{"urn-without-flag", optIn("ca", "uri-sans", "urn:shop:web"), nil,
			[]string{field("uri-sans"), `"urn:shop:web"`, "--allowed-uri-sans"}},
		{"common-name", optIn("ca", "common-name", "postgres"), nil,
			[]string{field("common-name"), `"postgres"`, "--allow-common-name"}},
		{"pod-name-expands-to-another-namespace", optIn("ca", "dns-names", "${POD_NAME}.local"), func(p *corev1.Pod) {
			p.Name = "x.bank.svc.cluster"
		}, []string{field("dns-names"), `expands to "x.bank.svc.cluster.local" for this pod`, "L is exactly one label"}},
		{"two-labels-before-the-namespace", optIn("ca", "dns-names", "login.bank.com"), nil,
			[]string{field("dns-names"), `"login.bank.com"`, "a DNS name must be L."}},
		{"hundred-year-certificate", optIn("ca", "duration", "876000h"), nil,
			[]string{field("duration"), `"876000h"`, "--max-duration"}},
		{"rsa-8192", optIn("ca", "key-algorithm", "RSA", "key-size", "8192"), nil,
			[]string{field("key-size"), `"8192"`, "--max-rsa-key-size"}},
		{"annotation-too-long", optIn("ca", "dns-names", strings.Repeat("a,", 2100)), nil,
			[]string{field("dns-names"), "--max-annotation-bytes"}},
		{"renewal-storm", optIn("ca", "duration", "1m", "renew-before", "59.999s"), nil,
			[]string{field("renew-before"), `"59.999s"`, "leaves 1ms between renewals", "--min-renew-interval"}},
		{"bare-label", optIn("ca", "dns-names", "payments,localhost"), nil,
			[]string{field("dns-names"), `"payments"`, `"localhost"`, "a bare label"}},
		// Every problem at once, identity included.
		{"control-character-cn-and-forged-spiffe-id", optIn("ca", "common-name", "web\tadmin", "uri-sans", "spiffe://cluster.local/ns/bank/sa/teller"), nil,
			[]string{field("common-name"), field("uri-sans"), "spiffe://cluster.local/ns/bank/sa/teller", "a pod's only SPIFFE ID is its own"}},
		{"windows", optIn("ca"), func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} },
			[]string{"spec.os.name", "no Windows plugin"}},
		{"existing-volume", optIn("ca"), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, []string{"spec.volumes[0].name", `"` + mutate.VolumeName + `"`, annotations.Enable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(tc.name, tc.ann)
			if tc.mod != nil {
				tc.mod(p)
			}
			name := p.Name
			ctx := ctxFor(t, 15*time.Second)
			_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			errorContains(t, err, append([]string{`admission webhook "inject.mtls.demo" denied the request`}, tc.want...)...)
			if !apierrors.IsInvalid(err) {
				t.Errorf("error reason %q, want Invalid (HTTP 422, like the API server's own validation)", apierrors.ReasonForError(err))
			}
			if _, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("refused pod was stored (get: %v)", err)
			}
		})
	}
}

// TestWarningsReachClient: soft problems come back as API warnings, which
// kubectl prints, while the pod is still created and injected.
func TestWarningsReachClient(t *testing.T) {
	cs, warns, c := clients(t)
	ns := namespace(t, cs, "warn", nil)
	createIssuer(t, c, ns, "ca", cmmeta.ConditionTrue)
	installChartWebhook(t, cs, "warn", ns)
	ctx := ctxFor(t, 30*time.Second)
	warns.Take()

	ann := optIn("ca")
	ann["mtls.demo/isuer"] = "ca"
	got, err := cs.CoreV1().Pods(ns).Create(ctx, pod("typo", ann), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertInjected(t, got, "ca", annotations.DefaultMountPath)
	first := warns.Take()
	assertWarning(t, first, "mtls.demo/isuer is not known", "did you mean mtls.demo/issuer?")
	// No Service selects the pod yet: its certificate has no DNS names,
	// and the client is told what to do.
	assertWarning(t, first, "no Service in namespace "+ns+" selects this pod", "create the Service before the workload, or set mtls.demo/dns-names")

	createService(t, cs, ns, "web")
	// The webhook reads Services from its informer cache: wait until it
	// has seen this one, with dry runs that store nothing.
	eventually(t, 30*time.Second, "the webhook to see the Service", func(ctx context.Context) error {
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod("probe", optIn("ca")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if len(got.Spec.Volumes) == 0 || got.Spec.Volumes[0].CSI.VolumeAttributes[mutate.AttrDNSNames] == "" {
			return fmt.Errorf("no DNS names derived yet")
		}
		return nil
	})
	warns.Take()
	got, err = cs.CoreV1().Pods(ns).Create(ctx, pod("with-service", optIn("ca")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dns := got.Spec.Volumes[0].CSI.VolumeAttributes[mutate.AttrDNSNames]; !strings.HasPrefix(dns, "web."+ns+",web."+ns+".svc") {
		t.Errorf("DNS names %q, want the Service's", dns)
	}
	if w := warns.Take(); len(w) != 0 {
		t.Errorf("warnings %q once a Service selects the pod, want none", w)
	}

	got, err = cs.CoreV1().Pods(ns).Create(ctx, pod("no-issuer", optIn("absent")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertInjected(t, got, "absent", annotations.DefaultMountPath)
	assertWarning(t, warns.Take(), "Issuer "+ns+"/absent does not exist")
}

func assertWarning(t testing.TB, got []string, want ...string) {
	t.Helper()
	for _, w := range got {
		ok := true
		for _, s := range want {
			ok = ok && strings.Contains(w, s)
		}
		if ok {
			return
		}
	}
	t.Errorf("warnings %q: none contains all of %q", got, want)
}

// TestIssuerCheck: a Ready Issuer gives a clean admission; a missing or
// not-Ready one a warning (--issuer-check=warn, the suite's webhook) or a
// refusal (--issuer-check=deny, a second instance: the built binary).
func TestIssuerCheck(t *testing.T) {
	cs, warns, c := clients(t)

	t.Run("warn", func(t *testing.T) {
		ns := namespace(t, cs, "issuer-warn", nil)
		createService(t, cs, ns, "web") // no "no Service" warning either
		installChartWebhook(t, cs, "issuer-warn", ns)
		createIssuer(t, c, ns, "ready", cmmeta.ConditionTrue)
		createIssuer(t, c, ns, "pending", cmmeta.ConditionFalse)
		// The webhook reads Issuers from its informer cache: wait until
		// the Ready one is seen, using dry runs that store nothing.
		waitNoWarnings(t, cs, warns, ns, "ready")

		got, err := cs.CoreV1().Pods(ns).Create(ctxFor(t, 10*time.Second), pod("ready", optIn("ready")), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, got, "ready", annotations.DefaultMountPath)
		if w := warns.Take(); len(w) != 0 {
			t.Errorf("Ready Issuer: warnings %q, want none", w)
		}

		got, err = cs.CoreV1().Pods(ns).Create(ctxFor(t, 10*time.Second), pod("pending", optIn("pending")), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, got, "pending", annotations.DefaultMountPath)
		assertWarning(t, warns.Take(), "Issuer "+ns+"/pending is not Ready")

		got, err = cs.CoreV1().Pods(ns).Create(ctxFor(t, 10*time.Second), pod("absent", optIn("absent")), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, got, "absent", annotations.DefaultMountPath)
		assertWarning(t, warns.Take(), "Issuer "+ns+"/absent does not exist")
	})

	t.Run("deny", func(t *testing.T) {
		ca, err := newCA("deny-ca")
		if err != nil {
			t.Fatal(err)
		}
		proc, _ := startWebhookProcess(t, "deny", ca, "--issuer-check=deny")
		ns := namespace(t, cs, "issuer-deny", nil)
		createService(t, cs, ns, "web")
		createIssuer(t, c, ns, "ready", cmmeta.ConditionTrue)
		install(t, cs, chartWebhookConfig(t, "issuer-deny", proc.url, ca.CertPEM))
		waitNoWarnings(t, cs, warns, ns, "ready")

		got, err := cs.CoreV1().Pods(ns).Create(ctxFor(t, 10*time.Second), pod("ready", optIn("ready")), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, got, "ready", annotations.DefaultMountPath)

		_, err = cs.CoreV1().Pods(ns).Create(ctxFor(t, 10*time.Second), pod("absent", optIn("absent")), metav1.CreateOptions{})
		errorContains(t, err, `admission webhook "inject.mtls.demo" denied the request`,
			"metadata.annotations[mtls.demo/issuer]", `"absent"`, "does not exist")
	})
}

// createService creates a Service called name that selects the pods pod()
// makes (app=it), so that they get DNS names derived from it.
func createService(t testing.TB, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "it"},
			Ports: []corev1.ServicePort{{Port: 8443}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctxFor(t, 10*time.Second), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitNoWarnings polls dry-run creations of a pod signed by issuer until
// one is injected without any warning.
func waitNoWarnings(t testing.TB, cs kubernetes.Interface, warns *controlplane.Warnings, ns, issuer string) {
	t.Helper()
	eventually(t, 30*time.Second, "a clean admission with Issuer "+issuer, func(ctx context.Context) error {
		warns.Take()
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod("probe", optIn(issuer)), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if !injected(got) {
			return fmt.Errorf("not injected yet")
		}
		if w := warns.Take(); len(w) != 0 {
			return fmt.Errorf("warnings %q", w)
		}
		return nil
	})
	warns.Take()
}

// TestWebhookSpeaksHTTP1Only: the API server calls webhooks over HTTP/1.1,
// so the webhook offers nothing else; a client that insists on HTTP/2 is
// refused in the TLS handshake.
func TestWebhookSpeaksHTTP1Only(t *testing.T) {
	requireWebhook(t)
	u, err := url.Parse(suite.webhookURL)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(protos ...string) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		return tls.DialWithDialer(d, "tcp", u.Host, &tls.Config{RootCAs: suite.webhook.ca.Pool(), ServerName: u.Hostname(),
			NextProtos: protos, MinVersion: tls.VersionTLS12})
	}
	conn, err := dial("h2", "http/1.1")
	if err != nil {
		t.Fatalf("a client offering h2 and http/1.1: %v", err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("negotiated %q, want http/1.1", p)
	}
	_ = conn.Close()
	if conn, err := dial("h2"); err == nil {
		_ = conn.Close()
		t.Errorf("an h2-only client was accepted (negotiated %q)", conn.ConnectionState().NegotiatedProtocol)
	}
}

// TestHostileAnnotationKeysThroughTheAPIServer sends what the security
// review sent through the API server with a plain create: the API server
// validates annotation keys only after mutating admission, so the webhook
// sees hundreds of unique, long mtls.demo/ keys with over-long values. The
// answer is bounded, and 50 such pods leave the webhook's metric series as
// they were after the first.
func TestHostileAnnotationKeysThroughTheAPIServer(t *testing.T) {
	requireWebhook(t)
	cs, _, _ := clients(t)
	ns := namespace(t, cs, "it-hostile", nil)
	installChartWebhook(t, cs, "it-hostile", ns)
	hostile := func(round int) *corev1.Pod {
		ann := optIn("ca", "dns-names", strings.Repeat("a,", 2100))
		for i := range 40 {
			ann[fmt.Sprintf("%s%d-%03d-%s", annotations.Prefix, round, i, strings.Repeat("k", 200))] = strings.Repeat("v", 4000)
		}
		return pod(fmt.Sprintf("hostile-%d", round), ann)
	}
	send := func(round int) error {
		_, err := cs.CoreV1().Pods(ns).Create(ctxFor(t, 15*time.Second), hostile(round), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	err := send(0)
	errorContains(t, err, `admission webhook "inject.mtls.demo" denied the request`, "metadata.annotations[mtls.demo/dns-names]", "--max-annotation-bytes")
	if n := len(err.Error()); n > 4096 {
		t.Errorf("a refusal of %d bytes: %.300s", n, err.Error())
	}
	if strings.Contains(err.Error(), strings.Repeat("k", 200)) {
		t.Errorf("the refusal quotes an unknown key in full: %.300s", err.Error())
	}
	before := denialSeries(t)
	for round := 1; round <= 50; round++ {
		if err := send(round); err == nil {
			t.Fatalf("round %d admitted", round)
		}
	}
	if after := denialSeries(t); after != before {
		t.Errorf("mtls_webhook_denial_causes_total has %d series after 50 hostile pods, %d after the first", after, before)
	}
}

// denialSeries counts the webhook's denial-cause series.
func denialSeries(t *testing.T) int {
	t.Helper()
	n := len(metricFamilies(t, suite.metricsURL)["mtls_webhook_denial_causes_total"].GetMetric())
	if n == 0 {
		t.Fatal("no mtls_webhook_denial_causes_total series served")
	}
	return n
}
