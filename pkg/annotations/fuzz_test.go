package annotations

import (
	"path"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary values to every key at once. Parse must never
// panic, must be deterministic, must put every error on an annotation, and a
// config it accepts must be one the rest of the webhook can rely on.
func FuzzParse(f *testing.F) {
	f.Add("true", "demo-ca", "Issuer", "24h", "8h", "ECDSA", "256", "/var/run/mtls", "a,b.ns.svc", "spiffe://td/x", "app", "frontend", "mtls.demo/isuer")
	f.Add("yes", "", "Foo", "forever", "48h", "DSA", "1024", "/", "Bad_Name", "::", "", "database", "mtls.demo/x")
	f.Add("true", "x", "ClusterIssuer", "1h", "1h", "rsa", "8192", "/etc", "${POD_NAME}.${POD_NAMESPACE}", "spiffe://${X}", "a,,b", "backend", "")
	f.Fuzz(func(t *testing.T, enable, issuer, kind, dur, renew, alg, size, mount, dns, uris, containers, app, extra string) {
		ann := map[string]string{
			Enable: enable, Issuer: issuer, IssuerKind: kind, Duration: dur, RenewBefore: renew,
			KeyAlgorithm: alg, KeySize: size, MountPath: mount, DNSNames: dns, URISANs: uris,
			Containers: containers, App: app,
			// The key size's string doubles as the group ID, so the corpus
			// keeps its shape while fs-group's number parsing is fuzzed too.
			FSGroup: size,
		}
		if extra != "" {
			ann[extra] = "x"
		}
		cfg, warnings, errs := Parse(ann, NewDefaults())
		cfg2, warnings2, errs2 := Parse(ann, NewDefaults())
		if !reflect.DeepEqual(cfg, cfg2) || !reflect.DeepEqual(warnings, warnings2) || !reflect.DeepEqual(errs, errs2) {
			t.Fatal("Parse is not deterministic")
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Field, "metadata.annotations[") || e.Detail == "" {
				t.Fatalf("error not on an annotation: %v", e)
			}
		}
		if len(errs) > 0 {
			if cfg.Enabled {
				t.Fatal("a refused pod must not be enabled")
			}
			return
		}
		if !cfg.Enabled {
			if OptedIn(ann) {
				t.Fatal("an opted-in pod without errors must be enabled")
			}
			return
		}
		switch {
		case cfg.Duration < MinDuration:
			t.Fatalf("accepted duration %s", cfg.Duration)
		case cfg.RenewBefore <= 0 || cfg.RenewBefore >= cfg.Duration:
			t.Fatalf("accepted renew-before %s for duration %s", cfg.RenewBefore, cfg.Duration)
		case cfg.KeyAlgorithm != AlgorithmECDSA && cfg.KeyAlgorithm != AlgorithmRSA:
			t.Fatalf("accepted algorithm %q", cfg.KeyAlgorithm)
		case !path.IsAbs(cfg.MountPath) || cfg.MountPath == "/" || path.Clean(cfg.MountPath) != cfg.MountPath:
			t.Fatalf("accepted mount path %q", cfg.MountPath)
		case cfg.FSGroup == nil || *cfg.FSGroup < 1 || *cfg.FSGroup > MaxFSGroup:
			t.Fatalf("accepted fs-group %v from %q", cfg.FSGroup, size)
		case cfg.Issuer.Name == "":
			t.Fatal("accepted an empty issuer name")
		case cfg.App != "" && cfg.App != AppFrontend && cfg.App != AppBackend:
			t.Fatalf("accepted app %q", cfg.App)
		}
		for _, c := range cfg.Containers {
			if c == "" {
				t.Fatal("accepted an empty container name")
			}
		}
	})
}
