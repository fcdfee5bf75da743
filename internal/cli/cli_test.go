package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runMain(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, IO{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: web}
      annotations: {mtls.demo/enable: "true", mtls.demo/isuer: typo}
    spec:
      containers: [{name: web, image: web:1}]
`

func TestRenderPrintsTheInjectedYAML(t *testing.T) {
	code, out, errOut := runMain(t, deployment, "render", "-f", "-", "--default-issuer", "shop-ca")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"driver: csi.cert-manager.io", "csi.cert-manager.io/issuer-name: shop-ca", "name: MTLS_CERT_FILE"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "Warning: Deployment shop/web (document 1): annotation mtls.demo/isuer is not known and is ignored; did you mean mtls.demo/issuer?") {
		t.Errorf("warning missing from stderr: %q", errOut)
	}
}

func TestRenderUsesServicesFromAFile(t *testing.T) {
	code, out, errOut := runMain(t, deployment, "render", "-f", "-", "--default-issuer", "shop-ca", "--services", "testdata/services.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "web-svc.shop,web-svc.shop.svc,web-svc.shop.svc.cluster.local") {
		t.Errorf("DNS names not derived from --services:\n%s", out)
	}
}

// A Service in --services without a namespace is in --namespace, as one in
// the rendered input would be.
func TestRenderPutsNamespacelessServicesInTheNamespaceFlag(t *testing.T) {
	code, out, errOut := runMain(t, deployment, "render", "-f", "-", "--default-issuer", "shop-ca", "--namespace", "shop",
		"--services", "testdata/services-no-namespace.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "web-svc.shop,web-svc.shop.svc,web-svc.shop.svc.cluster.local") {
		t.Errorf("DNS names not derived from the namespaceless --services entry:\n%s", out)
	}
}

func TestRenderFailsWithTheWebhooksErrors(t *testing.T) {
	code, out, errOut := runMain(t, deployment, "render", "-f", "-")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("printed YAML despite the refusal: %s", out)
	}
	if !strings.Contains(errOut, "denied: Deployment shop/web (document 1): metadata.annotations[mtls.demo/issuer]: Required value") {
		t.Errorf("stderr: %s", errOut)
	}
}

func TestCommandLineMistakes(t *testing.T) {
	tests := map[string]struct {
		args     []string
		code     int
		errorHas string
	}{
		"an unknown command":           {[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		"an unknown flag":              {[]string{"render", "--nope"}, 2, "flag provided but not defined: -nope"},
		"render without a file":        {[]string{"render"}, 2, "-f FILE"},
		"a file that does not exist":   {[]string{"render", "-f", "/does/not/exist.yaml"}, 1, "no such file"},
		"a bad issuer pattern":         {[]string{"render", "-f", "-", "--allowed-issuers", "Issuer"}, 1, `issuer pattern "Issuer"`},
		"a default duration too short": {[]string{"render", "-f", "-", "--default-duration", "1s"}, 1, "--default-duration=1s: must be at least 1m0s (--min-duration)"},
		"a default duration past --max-duration": {[]string{"render", "-f", "-", "--default-duration", "24h", "--max-duration", "12h"}, 1,
			"--default-duration=24h0m0s: must be at least 1m0s (--min-duration) and at most 12h0m0s (--max-duration)"},
		"a default issuer name the API would refuse": {[]string{"render", "-f", "-", "--default-issuer", "Demo_CA"}, 1,
			`--default-issuer="Demo_CA" --default-issuer-kind="Issuer" --default-issuer-group="cert-manager.io" --allowed-issuers="": every pod that relies on them would be refused: metadata.annotations[mtls.demo/issuer]: Invalid value: "Demo_CA"`},
		"a default issuer kind cert-manager does not have": {[]string{"render", "-f", "-", "--default-issuer", "ca", "--default-issuer-kind", "Foo"}, 1,
			`every pod that relies on them would be refused: metadata.annotations[mtls.demo/issuer-kind]: Unsupported value: "Foo"`},
		"a default ClusterIssuer that --allowed-issuers forbids": {[]string{"render", "-f", "-", "--default-issuer", "corp-ca", "--default-issuer-kind", "ClusterIssuer"}, 1,
			`--default-issuer="corp-ca" --default-issuer-kind="ClusterIssuer" --default-issuer-group="cert-manager.io" --allowed-issuers="": every pod that relies on them would be refused: metadata.annotations[mtls.demo/issuer]: Forbidden: issuer ClusterIssuer/corp-ca is not allowed by this webhook's --allowed-issuers (allowed: Issuer/*)`},
		"a default ClusterIssuer kind without a default name is still checked": {[]string{"render", "-f", "-", "--default-issuer-kind", "ClusterIssuer"}, 1,
			`--default-issuer-kind="ClusterIssuer"`},
		"an upper-case trust domain": {[]string{"render", "-f", "-", "--trust-domain", "Cluster.Local"}, 1,
			`--trust-domain="Cluster.Local": a SPIFFE trust domain is lower-case letters, digits, '.', '-' and '_'`},
		"a trust domain with a path": {[]string{"serve", "--trust-domain", "td/x"}, 1, `--trust-domain="td/x"`},
		"a lower-case kind in --allowed-issuers": {[]string{"render", "-f", "-", "--allowed-issuers", "issuer/*"}, 1,
			`--allowed-issuers: issuer pattern "issuer/*": kind "issuer" must be spelt as the API spells it`},
		"an upper-case cluster domain makes every derived name invalid": {[]string{"render", "-f", "-", "--cluster-domain", "Cluster.Local"}, 1,
			`--cluster-domain="Cluster.Local" --max-dns-names=64: every pod that relies on them would be refused: metadata.annotations[mtls.demo/dns-names]`},
		"an RSA size the driver refuses": {[]string{"render", "-f", "-", "--max-rsa-key-size", "16384"}, 1, "--max-rsa-key-size=16384: must be 2048 to 8192"},
		"a min duration under a minute":  {[]string{"serve", "--min-duration", "10s"}, 1, "--min-duration=10s: must be at least 1m0s"},
		"a second SPIFFE ID allowed by glob": {[]string{"render", "-f", "-", "--allowed-uri-sans", "spiffe://cluster.local/*"}, 1,
			`--allowed-uri-sans: "spiffe://cluster.local/*": a pod's only SPIFFE ID is its own`},
		"a DNS grant without a namespace": {[]string{"render", "-f", "-", "--allowed-dns-names", "*.example.com"}, 1,
			`--allowed-dns-names: "*.example.com": want namespace=glob`},
		"serve with a bad issuer check": {[]string{"serve", "--issuer-check", "maybe"}, 1, `--issuer-check="maybe": must be warn, deny or off`},
		"serve with a bad log level":    {[]string{"--log-level", "loud"}, 1, `--log-level="loud"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runMain(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.errorHas) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tc.code, tc.errorHas)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	if code, out, _ := runMain(t, "", "help"); code != 0 || !strings.Contains(out, "render -f FILE") {
		t.Errorf("help: exit %d, %q", code, out)
	}
	if code, _, errOut := runMain(t, "", "serve", "-h"); code != 0 || !strings.Contains(errOut, "-allowed-issuers") {
		t.Errorf("serve -h: exit %d, %q", code, errOut)
	}
}

func TestCheckServeArgs(t *testing.T) {
	if err := CheckServeArgs([]string{"--port=9443", "--allowed-issuers=", "--allow-any-dns-names=false", "--log-level=warn",
		"--allowed-dns-names=shop=*.shop.example.com,*=${POD_NAMESPACE}.apps.example.com", "--allowed-uri-sans=urn:${POD_NAMESPACE}:*",
		"--allow-common-name", "--max-dns-names=10", "--max-uri-sans=2", "--max-annotation-bytes=1024",
		"--min-duration=1h", "--max-duration=720h", "--max-rsa-key-size=3072"}); err != nil {
		t.Errorf("valid args refused: %v", err)
	}
	if err := CheckServeArgs([]string{"--portt=1"}); err == nil || !strings.Contains(err.Error(), "-portt") {
		t.Errorf("a misspelt flag must be refused by name, got %v", err)
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := runMain(t, "", "version"); code != 0 || out != "mtls-webhook dev\n" {
		t.Errorf("version: exit %d, %q", code, out)
	}
}
