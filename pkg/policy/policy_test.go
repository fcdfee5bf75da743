package policy

import (
	"strings"
	"testing"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

func ref(kind, name string) annotations.IssuerRef {
	return annotations.IssuerRef{Kind: kind, Name: name, Group: annotations.CertManagerGroup}
}

func TestIssuerPolicy(t *testing.T) {
	tests := map[string]struct {
		patterns []string
		ref      annotations.IssuerRef
		allowed  bool
	}{
		"by default any namespaced Issuer is allowed":          {nil, ref("Issuer", "demo-ca"), true},
		"by default no ClusterIssuer is allowed":               {nil, ref("ClusterIssuer", "corp-ca"), false},
		"a listed ClusterIssuer is allowed":                    {[]string{"ClusterIssuer/mesh-ca"}, ref("ClusterIssuer", "mesh-ca"), true},
		"a list replaces the default":                          {[]string{"ClusterIssuer/mesh-ca"}, ref("Issuer", "demo-ca"), false},
		"globs match issuer names":                             {[]string{"Issuer/team-*"}, ref("Issuer", "team-blue"), true},
		"globs do not match other names":                       {[]string{"Issuer/team-*"}, ref("Issuer", "rogue"), false},
		"a kind without a group means cert-manager.io":         {[]string{"Issuer/*"}, annotations.IssuerRef{Kind: "Issuer", Name: "x", Group: "example.com"}, false},
		"an external issuer is allowed with its group spelled": {[]string{"AWSPCAIssuer.awspca.cert-manager.io/*"}, annotations.IssuerRef{Kind: "AWSPCAIssuer", Name: "pca", Group: "awspca.cert-manager.io"}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := New(tc.patterns, false, "cluster.local")
			if err != nil {
				t.Fatal(err)
			}
			errs := p.CheckIssuer(tc.ref)
			if got := len(errs) == 0; got != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%v)", got, tc.allowed, errs)
			}
			if !tc.allowed && errs[0].Field != "metadata.annotations[mtls.demo/issuer]" {
				t.Errorf("error on %s", errs[0].Field)
			}
		})
	}
}

func TestBadIssuerPatternsAreRefusedAtStartUp(t *testing.T) {
	for _, bad := range []string{"Issuer", "/x", "Issuer/", "Issuer/[a-", "issuer/*", "clusterIssuer/mesh-ca", "Certificate/x"} {
		if _, err := New([]string{bad}, false, ""); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("pattern %q: err = %v, want one naming the pattern", bad, err)
		}
	}
}

func TestBlankIssuerPatternsMeanTheDefault(t *testing.T) {
	for _, patterns := range [][]string{nil, {""}, {" ", ""}} {
		p, err := New(patterns, false, "cluster.local")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.AllowedIssuers) != 1 || p.AllowedIssuers[0].String() != DefaultAllowedIssuers {
			t.Errorf("%q: allowed issuers %v, want only %s", patterns, p.AllowedIssuers, DefaultAllowedIssuers)
		}
	}
}
