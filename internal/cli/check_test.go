package cli

import (
	"strings"
	"testing"
)

// Fullname must name objects exactly as the chart's mtls-webhook.fullname
// helper does, or check looks for objects that do not exist.
func TestFullnameFollowsTheChartHelper(t *testing.T) {
	for release, want := range map[string]string{
		"mtls-webhook":                 "mtls-webhook",
		"prod-mtls-webhook":            "prod-mtls-webhook",
		"mtls":                         "mtls-mtls-webhook",
		strings.Repeat("a", 40):        strings.Repeat("a", 40) + "-mtls-webhoo",
		strings.Repeat("b", 51) + "-x": strings.Repeat("b", 51),
	} {
		if got := Fullname(release); got != want {
			t.Errorf("Fullname(%q) = %q, want %q", release, got, want)
		}
	}
}

func TestCheckRefusesBadFlags(t *testing.T) {
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"output":          {[]string{"-o", "yaml"}, `-o="yaml": must be table or json`},
		"timeout":         {[]string{"--timeout", "0s"}, "--timeout=0s: must be positive"},
		"required issuer": {[]string{"--required-issuers", "Issuer/demo-ca"}, `--required-issuers: "Issuer/demo-ca": want Issuer/<namespace>/<name> or ClusterIssuer/<name>`},
		"default issuer":  {[]string{"--default-issuer", "demo-ca"}, `--default-issuer="demo-ca": want Issuer/<name> or ClusterIssuer/<name>`},
		"no name":         {[]string{"--release", ""}, "--release or --name: one must be set"},
		"unknown flag":    {[]string{"--nope"}, "flag provided but not defined: -nope"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runMain(t, "", append([]string{"check", "--kubeconfig", "/nonexistent"}, c.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (usage); stderr %q", code, errOut)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q lacks %q", errOut, c.want)
			}
			if out != "" {
				t.Errorf("printed a report on bad flags: %q", out)
			}
		})
	}
}

// Without a cluster the command fails (exit 1) and says why, before any
// check runs.
func TestCheckWithoutAClusterFails(t *testing.T) {
	code, out, errOut := runMain(t, "", "check", "--kubeconfig", "/nonexistent/kubeconfig")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/kubeconfig") || out != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestHelpListsCheck(t *testing.T) {
	code, out, _ := runMain(t, "", "help")
	if code != 0 || !strings.Contains(out, "mtls-webhook check [flags]") {
		t.Errorf("exit %d, usage %q", code, out)
	}
}
