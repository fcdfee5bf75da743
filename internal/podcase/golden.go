package podcase

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// CompareGolden marshals got to YAML and compares it with goldenFile,
// rewriting the file first when update is set (the tests' -update flag).
// pkg is named in the hint for creating a missing file.
func CompareGolden(t testing.TB, goldenFile string, got any, update bool, pkg string) {
	t.Helper()
	b, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if update {
		if err := os.WriteFile(goldenFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run go test %s -update to create it)", err, pkg)
	}
	if diff := cmp.Diff(string(want), string(b)); diff != "" {
		t.Errorf("output differs from %s (-want +got); rerun with -update if the change is intended:\n%s", goldenFile, diff)
	}
}

// CheckUnusedGoldens fails for every dir/*.golden.yaml that no input used:
// a stale golden file tests nothing.
func CheckUnusedGoldens(t testing.TB, dir string, used map[string]bool) {
	t.Helper()
	goldens, _ := filepath.Glob(filepath.Join(dir, "*.golden.yaml"))
	sort.Strings(goldens)
	for _, g := range goldens {
		if !used[g] {
			t.Errorf("%s has no input file: delete it or restore its input", g)
		}
	}
}
