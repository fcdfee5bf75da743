package app

import (
	"testing"

	"github.com/mtls-demo/mtls-webhook/internal/pki"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// The demo apps keep their own copy of the env var names and file names
// (their image builds from demo-apps/ alone); this pins them to what the
// webhook injects. It lives here, on the demo's side: the webhook's own
// tests do not depend on the demo.
func TestTheWebhookInjectsWhatTheDemoAppsRead(t *testing.T) {
	for ours, webhook := range map[string]string{
		EnvUseMTLS: mutate.EnvUseMTLS, EnvCertFile: mutate.EnvCertFile, EnvKeyFile: mutate.EnvKeyFile, EnvCAFile: mutate.EnvCAFile,
	} {
		if ours != webhook {
			t.Errorf("the demo apps read %s, the webhook injects %s", ours, webhook)
		}
	}
	if mutate.CertFile != pki.CertName || mutate.KeyFile != pki.KeyName || mutate.CAFile != pki.CAName {
		t.Errorf("file names %s/%s/%s differ from the driver layout the demo uses (%s/%s/%s)",
			mutate.CertFile, mutate.KeyFile, mutate.CAFile, pki.CertName, pki.KeyName, pki.CAName)
	}
}
