package launchertest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// chartConfigPath is where the chart mounts a component's config file.
const chartConfigPath = "/var/cert-manager/config/config.yaml"

// workloads maps the chart's Deployments and Job to the launcher that runs
// them.
var workloads = []struct{ kind, name, component, configMap string }{
	{"Deployment", "cert-manager", "controller", "cert-manager"},
	{"Deployment", "cert-manager-webhook", "webhook", "cert-manager-webhook"},
	{"Deployment", "cert-manager-cainjector", "cainjector", "cert-manager-cainjector"},
	{"Job", "cert-manager-startupapicheck", "startupapicheck", ""},
}

// validate runs `<launcher> <the chart's args> --validate-flags`. When the
// chart mounts a config file, the file (from the rendered ConfigMap) is
// written out and the --config argument pointed at it.
func validate(t *testing.T, objs []*unstructured.Unstructured, component, configMap string, args []string) string {
	t.Helper()
	args = ExpandEnv(args, "cert-manager")
	for i, a := range args {
		if a == "--config="+chartConfigPath {
			cm := Find(t, objs, "ConfigMap", configMap)
			data, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			args[i] = "--config=" + path
		}
	}
	cmd := exec.Command(Binary(component), append(args, "--validate-flags")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "command line valid") {
		t.Fatalf("%s refused the chart's arguments %q: %v\n%s", component, args, err, out.String())
	}
	return out.String()
}

// TestChartArgumentsAccepted renders cert-manager's chart with the
// installer's values file and with every option that adds an argument or a
// config file, and runs each launcher on exactly the arguments the chart
// gives its container. Each must accept all of them (the launchers fail on
// an unknown flag), and the resolved configuration must say what the
// arguments and config files meant.
func TestChartArgumentsAccepted(t *testing.T) {
	variants := []struct {
		name string
		set  []string
		// want: component -> what its --validate-flags output must hold;
		// notWant: what it must not.
		want, notWant map[string][]string
	}{{
		name: "installer values",
		want: map[string][]string{
			"controller": {"cluster-resource-namespace=cert-manager", "leader-elect=true", "leader-election-namespace=kube-system",
				"acme-http01-solver-image=localhost/cert-manager-acmesolver:" + CertManagerVersion,
				"certificaterequests-approver", "skipped=certificaterequests-issuer-acme"},
			"webhook": {"secure-port=10250", "dynamic-serving-ca-secret=cert-manager/cert-manager-webhook-ca",
				"dynamic-serving-dns-names=cert-manager-webhook,cert-manager-webhook.cert-manager,cert-manager-webhook.cert-manager.svc"},
			"cainjector":      {"leader-election-namespace=kube-system", "certificates-data-source=true"},
			"startupapicheck": {"wait=3m0s", "verbose=true"},
		},
	}, {
		name: "every option that adds an argument",
		set: []string{
			"global.logLevel=4", "clusterResourceNamespace=issuers-ns",
			"global.leaderElection.namespace=leases", "global.leaderElection.leaseDuration=61s",
			"global.leaderElection.renewDeadline=41s", "global.leaderElection.retryPeriod=16s",
			"ingressShim.defaultIssuerName=letsencrypt", "ingressShim.defaultIssuerKind=ClusterIssuer",
			"ingressShim.defaultIssuerGroup=cert-manager.io",
			"featureGates=ExperimentalCertificateSigningRequestControllers=true",
			"maxConcurrentChallenges=7", "enableCertificateOwnerRef=true",
			"dns01RecursiveNameserversOnly=true", "dns01RecursiveNameservers=198.18.0.10:53",
			"disableAutoApproval=true", "prometheus.enabled=false",
			"webhook.featureGates=OtherNames=true", "webhook.url.host=webhook.example",
			"cainjector.featureGates=CAInjectorMerging=false",
			"extraArgs[0]=--concurrent-workers=3",
			"webhook.extraArgs[0]=--tls-min-version=VersionTLS13",
			"cainjector.extraArgs[0]=--enable-apiservices-injectable=false",
			"startupapicheck.extraArgs[0]=-v", "startupapicheck.timeout=90s",
		},
		want: map[string][]string{
			"controller": {"cluster-resource-namespace=issuers-ns", "leader-election-namespace=leases",
				// disableAutoApproval removes the approver; the gate adds the CSR controllers.
				"certificatesigningrequests-issuer-ca", "metrics=0.0.0.0:9402"},
			"webhook":         {"dynamic-serving-dns-names=cert-manager-webhook,cert-manager-webhook.cert-manager,cert-manager-webhook.cert-manager.svc,webhook.example", "metrics=0\n"},
			"cainjector":      {"leader-election-namespace=leases", "apiservices:false", "metrics=0\n"},
			"startupapicheck": {"wait=1m30s"},
		},
		notWant: map[string][]string{"controller": {"certificaterequests-approver"}},
	}, {
		name: "config files",
		set: []string{
			"config.apiVersion=controller.config.cert-manager.io/v1alpha1", "config.kind=ControllerConfiguration",
			"config.kubernetesAPIQPS=9000", "config.kubernetesAPIBurst=9000", "config.numberOfConcurrentWorkers=200",
			"config.enableGatewayAPI=true", "config.leaderElectionConfig.namespace=from-config",
			"webhook.config.apiVersion=webhook.config.cert-manager.io/v1alpha1", "webhook.config.kind=WebhookConfiguration",
			"webhook.config.securePort=10260",
			"cainjector.config.apiVersion=cainjector.config.cert-manager.io/v1alpha1", "cainjector.config.kind=CAInjectorConfiguration",
			"cainjector.config.enableInjectableConfig.customResourceDefinitions=false",
		},
		want: map[string][]string{
			// The chart still passes --leader-election-namespace, and a flag wins over the file.
			"controller": {"leader-election-namespace=kube-system", "gateway-shim"},
			// With securePort in the file the chart drops --secure-port: the file's value holds.
			"webhook":    {"secure-port=10260"},
			"cainjector": {"crds:false"},
		},
	}}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			objs := Render(t, v.set...)
			for _, w := range workloads {
				c := ContainerOf(t, Find(t, objs, w.kind, w.name))
				out := validate(t, objs, w.component, w.configMap, c.Args)
				for _, want := range v.want[w.component] {
					if !strings.Contains(out, want) {
						t.Errorf("%s with the chart's args %q: resolved configuration lacks %q:\n%s", w.component, c.Args, want, out)
					}
				}
				for _, bad := range v.notWant[w.component] {
					if strings.Contains(out, bad) {
						t.Errorf("%s with the chart's args %q: resolved configuration holds %q:\n%s", w.component, c.Args, bad, out)
					}
				}
			}
		})
	}

	// The launchers' defaults are where the chart's probes and ports look.
	objs := Render(t)
	controller := ContainerOf(t, Find(t, objs, "Deployment", "cert-manager"))
	if p := controller.Probe["livenessProbe"]; p.Path != "/livez" || p.Port != "http-healthz" || controller.Ports["http-healthz"] != 9403 {
		t.Errorf("controller liveness probe %+v, ports %v: want /livez on http-healthz=9403", p, controller.Ports)
	}
	if out := validate(t, objs, "controller", "", controller.Args); !strings.Contains(out, "healthz=0.0.0.0:9403") || !strings.Contains(out, "metrics=0.0.0.0:9402") {
		t.Errorf("controller: /livez or metrics not on the chart's ports 9403/9402:\n%s", out)
	}
	webhook := ContainerOf(t, Find(t, objs, "Deployment", "cert-manager-webhook"))
	for kind, path := range map[string]string{"livenessProbe": "/livez", "readinessProbe": "/healthz"} {
		if p := webhook.Probe[kind]; p.Path != path || p.Port != "healthcheck" {
			t.Errorf("webhook %s %+v: want %s on healthcheck", kind, p, path)
		}
	}
	out := validate(t, objs, "webhook", "", webhook.Args)
	if want := fmt.Sprintf("healthz-port=%d", webhook.Ports["healthcheck"]); webhook.Ports["healthcheck"] != 6080 || !strings.Contains(out, want) {
		t.Errorf("webhook: chart's healthcheck port %d, launcher says:\n%s", webhook.Ports["healthcheck"], out)
	}
	if want := fmt.Sprintf("secure-port=%d", webhook.Ports["https"]); !strings.Contains(out, want) {
		t.Errorf("webhook: chart's https port %d, launcher says:\n%s", webhook.Ports["https"], out)
	}

	// With no arguments the launcher reports upstream's defaults; the
	// solver image's tag is the linked cert-manager module's version.
	bare, err := exec.Command(Binary("controller"), "--validate-flags").CombinedOutput()
	if err != nil || !strings.Contains(string(bare), "acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:"+CertManagerVersion+"\n") ||
		!strings.Contains(string(bare), "cluster-resource-namespace=kube-system\n") {
		t.Errorf("controller defaults: %v\n%s", err, bare)
	}

	// And a flag no cert-manager binary has is refused, so the checks above
	// can fail.
	cmd := exec.Command(Binary("controller"), "--no-such-flag", "--validate-flags")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown flag: --no-such-flag") {
		t.Errorf("an unknown flag was accepted: %v\n%s", err, out)
	}
}
