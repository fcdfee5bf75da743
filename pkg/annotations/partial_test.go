package annotations

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParsePartialKeepsOnlyValidValues: alongside errors, ParsePartial's
// Config holds the valid annotations' values and, for those in error, what
// the pod gets without them; Parse still returns the zero Config.
func TestParsePartialKeepsOnlyValidValues(t *testing.T) {
	d := testDefaults()
	ann := map[string]string{
		Enable:     "true",
		Duration:   "forever",
		MountPath:  "certs",
		App:        "database",
		FSGroup:    "-1",
		Containers: "web,Bad_Name",
		UseMTLS:    "false",
		CommonName: "${NOPE}",
	}
	cfg, _, errs := ParsePartial(ann, d)
	if len(errs) != 6 {
		t.Fatalf("want 6 errors, got %v", errs)
	}
	if !cfg.Enabled || cfg.MountPath != DefaultMountPath || cfg.App != "" || cfg.FSGroup != nil || cfg.CommonName != "" || cfg.UseMTLS {
		t.Errorf("partial config %+v", cfg)
	}
	if diff := cmp.Diff([]string{"web"}, cfg.Containers); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	if got, _, errs2 := Parse(ann, d); len(errs2) != len(errs) || !cmp.Equal(got, Config{}) {
		t.Errorf("Parse: %+v, %d errors", got, len(errs2))
	}

	cfg, _, _ = ParsePartial(map[string]string{Enable: "true", Containers: "Bad_Name"}, d)
	if cfg.Containers == nil || len(cfg.Containers) != 0 {
		t.Errorf("no valid name must select no container, got %#v", cfg.Containers)
	}
	cfg, _, errs = ParsePartial(map[string]string{Enable: "false", Duration: "x"}, d)
	if cfg.Enabled || len(errs) != 0 {
		t.Errorf("not opted in: %+v %v", cfg, errs)
	}
}
