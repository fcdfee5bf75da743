// Package helm tests the charts under helm/: lint, schema, rendering with
// several value sets, and applying every rendered object to a real
// kube-apiserver (envtest, with cert-manager's CRDs) with strict field
// validation, then exercising the chart's admission configuration there.
package helm

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// valueSets are the non-default value files, by chart, applied to the API
// server as well as rendered.
var valueSets = map[string][]string{
	chart.WebhookChart: {"webhook-hardened.yaml", "webhook-fail-open.yaml", "webhook-minimal.yaml"},
	chart.DemoChart:    {"demo-case2.yaml", "demo-plaintext.yaml", "demo-ingress.yaml"},
}

func TestLintStrict(t *testing.T) {
	helm := chart.HelmBinary(t)
	for _, name := range []string{chart.WebhookChart, chart.DemoChart} {
		sets := append([]string{""}, valueSets[name]...)
		for _, vf := range sets {
			args := []string{"lint", "--strict", chart.Dir(name), "--kube-version", chart.KubeVersion}
			label := name + "/defaults"
			if vf != "" {
				args = append(args, "--values", chart.ValuesFile(vf))
				label = name + "/" + vf
			}
			t.Run(label, func(t *testing.T) {
				out, err := exec.Command(helm, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				if !strings.Contains(string(out), "0 chart(s) failed") {
					t.Fatalf("unexpected lint output:\n%s", out)
				}
			})
		}
	}
}

// TestSchemaRefusesBadValues: wrong types, unknown keys and out-of-range
// values must make `helm template` fail, with helm naming the culprit.
func TestSchemaRefusesBadValues(t *testing.T) {
	helm := chart.HelmBinary(t)
	cases := []struct {
		chart, set, want string
	}{
		{chart.WebhookChart, "replicaCount=two", "/replicaCount"},
		{chart.WebhookChart, "unknownTopLevel=1", "additional properties 'unknownTopLevel' not allowed"},
		{chart.WebhookChart, "config.port=https", "/config/port"},
		{chart.WebhookChart, "config.prot=9443", "additional properties 'prot' not allowed"},
		{chart.WebhookChart, "config.issuerCheck=strict", "/config/issuerCheck"},
		{chart.WebhookChart, "config.allowAnyDNSNames=yes", "/config/allowAnyDNSNames"},
		{chart.WebhookChart, "config.defaultDuration=one-day", "/config/defaultDuration"},
		{chart.WebhookChart, "config.allowedIssuers={Secret/x}", "/config/allowedIssuers/0"},
		{chart.WebhookChart, "config.logLevel=verbose", "/config/logLevel"},
		{chart.WebhookChart, "config.allowedURISANs={spiffe://cluster.local/*}", "/config/allowedURISANs/0"},
		{chart.WebhookChart, "config.allowedDNSNames={*.example.com}", "/config/allowedDNSNames/0"},
		{chart.WebhookChart, "config.allowCommonName=yes", "/config/allowCommonName"},
		{chart.WebhookChart, "config.maxRSAKeySize=16384", "/config/maxRSAKeySize"},
		{chart.WebhookChart, "config.maxDuration=forever", "/config/maxDuration"},
		{chart.WebhookChart, "config.maxDNSNames=0", "/config/maxDNSNames"},
		{chart.WebhookChart, "validatingWebhook.failurePolicy=Retry", "/validatingWebhook/failurePolicy"},
		{chart.WebhookChart, "mutatingWebhook.failurePolicy=Retry", "/mutatingWebhook/failurePolicy"},
		{chart.WebhookChart, "mutatingWebhook.timeoutSeconds=31", "/mutatingWebhook/timeoutSeconds"},
		{chart.WebhookChart, "validatingAdmissionPolicy.enabled=maybe", "/validatingAdmissionPolicy/enabled"},
		{chart.WebhookChart, "certificates.privateKey.size=2048", "/certificates/privateKey/size"},
		{chart.WebhookChart, "image.pullPolicy=Sometimes", "/image/pullPolicy"},
		{chart.WebhookChart, "certManager.namespace=Cert_Manager", "/certManager/namespace"},
		// The API server refuses a binding with both Deny and Warn.
		{chart.WebhookChart, "validatingAdmissionPolicy.validationActions={Deny,Warn}", "/validatingAdmissionPolicy/validationActions"},
		{chart.WebhookChart, "validatingAdmissionPolicy.validationActions={Warn,Deny,Audit}", "/validatingAdmissionPolicy/validationActions"},
		{chart.WebhookChart, "workloadValidation.failurePolicy=Retry", "/workloadValidation/failurePolicy"},
		{chart.WebhookChart, "preStopSleepSeconds=-1", "/preStopSleepSeconds"},
		{chart.WebhookChart, "imageRegistry=https://registry.example.com", "/imageRegistry"},
		{chart.WebhookChart, "metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"},
		{chart.DemoChart, "reload=yes", "/reload"},
		{chart.DemoChart, "useMTLS=1", "/useMTLS"},
		{chart.DemoChart, "port=0", "/port"},
		{chart.DemoChart, "backend.typo=1", "additional properties 'typo' not allowed"},
		{chart.DemoChart, "allowedClients={frontend}", "/allowedClients/0"},
		{chart.DemoChart, "ingress.clientCertificate.duration=forever", "/ingress/clientCertificate/duration"},
	}
	for _, c := range cases {
		t.Run(c.chart+"/"+c.set, func(t *testing.T) {
			_, err := chart.TemplateOutput(helm, c.chart, chart.Options{Set: []string{c.set}})
			if err == nil {
				t.Fatalf("helm template --set %s succeeded, want a schema error", c.set)
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") ||
				!strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not name %q:\n%v", c.want, err)
			}
		})
	}
}

// TestTemplateRefusesInconsistentValues covers checks the schema cannot
// express, done with `fail` in the templates.
func TestTemplateRefusesInconsistentValues(t *testing.T) {
	helm := chart.HelmBinary(t)
	cases := []struct {
		chart string
		set   []string
		want  string
	}{
		{chart.WebhookChart, []string{"config.healthPort=10250"}, "config.port and config.healthPort must differ"},
		{chart.WebhookChart, []string{"config.metricsPort=8081"}, "config.metricsPort must differ"},
		{chart.WebhookChart, []string{"serviceAccount.create=false"}, "serviceAccount.name is required"},
		{chart.WebhookChart, []string{"config.defaultIssuer=mesh", "config.defaultIssuerKind=ClusterIssuer", "config.issuerCheck=deny"}, "config.allowedIssuers is empty"},
		{chart.WebhookChart, []string{"config.defaultIssuer=mesh", "config.defaultIssuerKind=ClusterIssuer"}, "the webhook refuses to start"},
		{chart.WebhookChart, []string{"podDisruptionBudget.minAvailable=null"}, "needs minAvailable or maxUnavailable"},
		{chart.WebhookChart, []string{"hostNetwork=true"}, "the kubelet already listens on 10250"},
		{chart.WebhookChart, []string{"preStopSleepSeconds=30"}, "terminationGracePeriodSeconds (30) must exceed preStopSleepSeconds (30)"},
		{chart.DemoChart, []string{"ingress.enabled=true", "ingress.tlsSecretName=mine"}, "ingress.clientCASecretName is required"},
		{chart.DemoChart, []string{"frontend.serviceAccount.name=app", "backend.serviceAccount.name=app"}, "distinct service accounts"},
		{chart.DemoChart, []string{"opsPort=8080"}, "port and opsPort must differ"},
		{chart.DemoChart, []string{"ingress.enabled=true", "pki.create=false"}, "ingress.enabled needs pki.create"},
	}
	for _, c := range cases {
		t.Run(c.chart+"/"+strings.Join(c.set, ","), func(t *testing.T) {
			_, err := chart.TemplateOutput(helm, c.chart, chart.Options{Set: c.set})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}

// TestRenderNamespaces: every namespaced object lands in the release
// namespace (no hard-coded namespaces), for every value set.
func TestRenderNamespaces(t *testing.T) {
	helm := chart.HelmBinary(t)
	for name, sets := range valueSets {
		for _, vf := range append([]string{""}, sets...) {
			opts := chart.Options{Release: "nsprobe", Namespace: "some-ns"}
			if vf != "" {
				opts.Values = []string{chart.ValuesFile(vf)}
			}
			objs := chart.Render(t, helm, name, opts)
			own := map[string]bool{"some-ns": true}
			for _, o := range objs {
				if o.GetKind() == "Namespace" { // helm test's canary namespace
					own[o.GetName()] = true
				}
			}
			for _, o := range objs {
				if ns := o.GetNamespace(); ns != "" && !own[ns] {
					t.Errorf("%s %s/%s (%s): namespace %q, want the release namespace", name, o.GetKind(), o.GetName(), vf, ns)
				}
			}
		}
	}
}

func TestRenderedWebhookDefaults(t *testing.T) {
	helm := chart.HelmBinary(t)
	objs := chart.Render(t, helm, chart.WebhookChart, chart.Options{})
	byKind := map[string][]string{}
	for _, o := range objs {
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o.GetName())
	}
	for kind, n := range map[string]int{
		"Deployment": 1, "Service": 1, "ServiceAccount": 2, "PodDisruptionBudget": 1,
		// The webhook's own, and the helm test's (it runs mtls-webhook check).
		"ClusterRole": 2, "ClusterRoleBinding": 2, "Issuer": 2, "Certificate": 2,
		"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 2, "ValidatingAdmissionPolicy": 2,
		"ValidatingAdmissionPolicyBinding": 2, "Namespace": 1, "Role": 2, "RoleBinding": 2, "Pod": 1,
	} {
		if len(byKind[kind]) != n {
			t.Errorf("%d %s rendered (%v), want %d", len(byKind[kind]), kind, byKind[kind], n)
		}
	}

	dep := find(t, objs, "Deployment", "mtls-mtls-webhook")
	if got := nested[int64](t, dep, "spec", "replicas"); got != 2 {
		t.Errorf("replicas = %d, want 2", got)
	}
	ctr := nested[[]any](t, dep, "spec", "template", "spec", "containers")[0].(map[string]any)
	if ctr["image"] != "ghcr.io/mtls-demo/mtls-webhook:0.1.0" {
		t.Errorf("image = %v", ctr["image"])
	}
	args := toStrings(ctr["args"].([]any))
	wantArgs := []string{"serve",
		"--cert-dir=/tmp/k8s-webhook-server/serving-certs", "--port=10250", "--health-addr=:8081",
		"--metrics-addr=:8080", "--default-issuer=", "--default-issuer-kind=Issuer",
		"--default-issuer-group=cert-manager.io", "--default-duration=24h", "--default-renew-before=8h",
		"--trust-domain=cluster.local", "--cluster-domain=cluster.local",
		"--frontend-image=ghcr.io/mtls-demo/demo-frontend:0.1.0",
		"--backend-image=ghcr.io/mtls-demo/demo-backend:0.1.0", "--issuer-check=warn",
		"--allowed-issuers=", "--allow-any-dns-names=false", "--allowed-dns-names=", "--allowed-uri-sans=",
		"--allow-common-name=false", "--max-annotation-bytes=4096", "--max-dns-names=64", "--max-uri-sans=8",
		"--min-duration=1m", "--max-duration=2160h", "--min-renew-interval=30s", "--max-rsa-key-size=4096", "--log-level=info"}
	if !slices.Equal(args, wantArgs) {
		t.Errorf("args =\n%q\nwant\n%q", args, wantArgs)
	}
	sc := ctr["securityContext"].(map[string]any)
	if sc["allowPrivilegeEscalation"] != false || sc["readOnlyRootFilesystem"] != true || sc["runAsNonRoot"] != true {
		t.Errorf("container securityContext not restricted: %v", sc)
	}
	if drop := sc["capabilities"].(map[string]any)["drop"].([]any); len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("capabilities.drop = %v", drop)
	}
	if sc["seccompProfile"].(map[string]any)["type"] != "RuntimeDefault" {
		t.Errorf("seccompProfile = %v", sc["seccompProfile"])
	}
	ports := map[string]int64{}
	for _, p := range ctr["ports"].([]any) {
		pm := p.(map[string]any)
		ports[pm["name"].(string)] = pm["containerPort"].(int64)
	}
	if ports["https"] != 10250 || ports["healthz"] != 8081 || ports["metrics"] != 8080 {
		t.Errorf("ports = %v", ports)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		hg := ctr[probe].(map[string]any)["httpGet"].(map[string]any)
		if hg["path"] != path || hg["port"] != "healthz" {
			t.Errorf("%s = %v", probe, hg)
		}
	}
	mount := ctr["volumeMounts"].([]any)[0].(map[string]any)
	if mount["mountPath"] != "/tmp/k8s-webhook-server/serving-certs" || mount["readOnly"] != true {
		t.Errorf("serving cert mount = %v", mount)
	}
	vol := nested[[]any](t, dep, "spec", "template", "spec", "volumes")[0].(map[string]any)
	if vol["secret"].(map[string]any)["secretName"] != "mtls-mtls-webhook-tls" {
		t.Errorf("serving cert volume = %v", vol)
	}
	tsc := nested[[]any](t, dep, "spec", "template", "spec", "topologySpreadConstraints")
	var keys []string
	for _, c := range tsc {
		keys = append(keys, c.(map[string]any)["topologyKey"].(string))
	}
	if !slices.Equal(keys, []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"}) {
		t.Errorf("topologySpreadConstraints keys = %v, want zone then hostname", keys)
	}

	// Least privilege: exactly get/list/watch on services and the issuers.
	cr := find(t, objs, "ClusterRole", "mtls-mtls-webhook")
	var rules []string
	for _, r := range nested[[]any](t, cr, "rules") {
		rm := r.(map[string]any)
		for _, g := range toStrings(rm["apiGroups"].([]any)) {
			for _, res := range toStrings(rm["resources"].([]any)) {
				rules = append(rules, g+"/"+res+":"+strings.Join(toStrings(rm["verbs"].([]any)), ","))
			}
		}
	}
	slices.Sort(rules)
	if want := []string{"/services:get,list,watch", "cert-manager.io/clusterissuers:get,list,watch", "cert-manager.io/issuers:get,list,watch"}; !slices.Equal(rules, want) {
		t.Errorf("ClusterRole rules = %v, want %v", rules, want)
	}

	// The serving certificate chain.
	serving := find(t, objs, "Certificate", "mtls-mtls-webhook-serving")
	if dns := toStrings(nested[[]any](t, serving, "spec", "dnsNames")); !slices.Equal(dns, []string{
		"mtls-mtls-webhook.mtls-system.svc", "mtls-mtls-webhook.mtls-system.svc.cluster.local"}) {
		t.Errorf("serving dnsNames = %v", dns)
	}
	if nested[string](t, serving, "spec", "issuerRef", "name") != "mtls-mtls-webhook-ca" {
		t.Errorf("serving cert not issued by the CA issuer")
	}
	ca := find(t, objs, "Certificate", "mtls-mtls-webhook-ca")
	if nested[bool](t, ca, "spec", "isCA") != true || nested[string](t, ca, "spec", "issuerRef", "name") != "mtls-mtls-webhook-selfsigned" {
		t.Errorf("CA certificate = %v", ca.Object["spec"])
	}

	// The MutatingWebhookConfiguration, typed.
	mwc := chart.RenderWebhookChart(t, helm, chart.Options{})
	if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != "mtls-system/mtls-mtls-webhook-serving" {
		t.Errorf("inject-ca-from = %q", got)
	}
	w := mwc.Webhooks[0]
	if w.Name != "inject.mtls.demo" || *w.ClientConfig.Service.Path != "/mutate-pods" ||
		*w.ClientConfig.Service.Port != 443 || w.ClientConfig.Service.Namespace != "mtls-system" ||
		string(*w.FailurePolicy) != "Fail" || *w.TimeoutSeconds != 5 ||
		string(*w.SideEffects) != "None" || string(*w.ReinvocationPolicy) != "IfNeeded" ||
		!slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) || len(w.MatchConditions) != 1 {
		t.Errorf("webhook = %+v", w)
	}
	excluded := w.NamespaceSelector.MatchExpressions[0]
	if excluded.Key != "kubernetes.io/metadata.name" || string(excluded.Operator) != "NotIn" ||
		!slices.Equal(excluded.Values, []string{"kube-system", "kube-public", "kube-node-lease", "mtls-system", "cert-manager"}) {
		t.Errorf("namespace exclusion = %+v", excluded)
	}
	optOut := w.NamespaceSelector.MatchExpressions[1]
	if optOut.Key != "mtls.demo/injection" || string(optOut.Operator) != "NotIn" || !slices.Equal(optOut.Values, []string{"disabled"}) {
		t.Errorf("opt-out = %+v", optOut)
	}
}

func TestRenderedDemo(t *testing.T) {
	helm := chart.HelmBinary(t)
	objs := chart.Render(t, helm, chart.DemoChart, chart.Options{Release: "demo", Namespace: "shop"})
	for _, app := range []string{"frontend", "backend"} {
		dep := find(t, objs, "Deployment", app)
		ann := nested[map[string]any](t, dep, "spec", "template", "metadata", "annotations")
		for k, v := range map[string]string{"mtls.demo/enable": "true", "mtls.demo/issuer": "demo-ca", "mtls.demo/app": app, "mtls.demo/use-mtls": "true"} {
			if ann[k] != v {
				t.Errorf("%s annotation %s = %v, want %s", app, k, ann[k], v)
			}
		}
		env := envOf(t, dep)
		if env["CERT_RELOAD"] != "true" {
			t.Errorf("%s CERT_RELOAD = %q", app, env["CERT_RELOAD"])
		}
	}
	if got := envOf(t, find(t, objs, "Deployment", "backend"))["ALLOWED_CLIENTS"]; got != "spiffe://cluster.local/ns/shop/sa/frontend" {
		t.Errorf("ALLOWED_CLIENTS = %q", got)
	}
	if got := envOf(t, find(t, objs, "Deployment", "frontend"))["BACKEND_URL"]; got != "https://backend-svc.shop.svc:8080" {
		t.Errorf("BACKEND_URL = %q", got)
	}
	find(t, objs, "Service", "backend-svc")
	find(t, objs, "Service", "frontend-svc")
	find(t, objs, "Issuer", "demo-ca")
	find(t, objs, "ClusterIssuer", "demo-shop-selfsigned")
	find(t, objs, "NetworkPolicy", "backend")
	for _, o := range objs {
		if o.GetKind() == "Ingress" {
			t.Errorf("Ingress rendered by default")
		}
	}

	plain := chart.Render(t, helm, chart.DemoChart, chart.Options{Values: []string{chart.ValuesFile("demo-plaintext.yaml")}})
	if got := envOf(t, find(t, plain, "Deployment", "frontend"))["BACKEND_URL"]; !strings.HasPrefix(got, "http://backend-svc.") || !strings.HasSuffix(got, ".svc:8080") {
		t.Errorf("plaintext BACKEND_URL = %q", got)
	}
	// The backend refuses ALLOWED_CLIENTS without mTLS: plain mode must not set it.
	if got, ok := envOf(t, find(t, plain, "Deployment", "backend"))["ALLOWED_CLIENTS"]; ok {
		t.Errorf("plaintext backend has ALLOWED_CLIENTS=%q; it would crash-loop", got)
	}
	case2 := chart.Render(t, helm, chart.DemoChart, chart.Options{Values: []string{chart.ValuesFile("demo-case2.yaml")}})
	if got := envOf(t, find(t, case2, "Deployment", "backend"))["CERT_RELOAD"]; got != "false" {
		t.Errorf("case 2 CERT_RELOAD = %q", got)
	}
	ing := find(t, chart.Render(t, helm, chart.DemoChart, chart.Options{Namespace: "shop", Values: []string{chart.ValuesFile("demo-ingress.yaml")}}), "Ingress", "mtls-frontend")
	ann := ing.GetAnnotations()
	// The Ingress trusts a Secret without the CA key: its own serving
	// Secret (ca.crt is the demo root), never pki.caSecretName.
	if ann["nginx.ingress.kubernetes.io/auth-tls-verify-client"] != "on" ||
		ann["nginx.ingress.kubernetes.io/auth-tls-secret"] != "shop/mtls-ingress-tls" ||
		ann["nginx.ingress.kubernetes.io/auth-tls-verify-depth"] != "2" ||
		ann["nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream"] != "true" {
		t.Errorf("ingress annotations = %v", ann)
	}
}
