package cli_test

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/mtls-demo/mtls-webhook/internal/cli"
	"github.com/mtls-demo/mtls-webhook/internal/podcase"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// baseFlags are the webhook flags of every case; a case adds its own in a
// "# flags:" comment line.
var baseFlags = []string{"--default-issuer=default-ca"}

// pipelineGolden is what the whole pipeline (parse, mutate, policy, the
// driver's rules) makes of a case, as the webhook and render answer it, and
// what the validating endpoint says about the pod that would be stored.
type pipelineGolden struct {
	Flags    []string    `json:"flags,omitempty"`
	Warnings []string    `json:"warnings,omitempty"`
	Errors   []string    `json:"errors,omitempty"`
	Verify   []string    `json:"verify,omitempty"`
	Pod      *corev1.Pod `json:"pod,omitempty"`
}

// caseFlags reads the "# flags:" line of a case file.
func caseFlags(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "# flags:"); ok {
			return strings.Fields(rest)
		}
	}
	return nil
}

// runCases runs every case file of dir (each NAME.yaml beside its
// NAME.golden.yaml) under the webhook's flags for it, baseFlags and its
// "# flags:" line, through cli.InjectorFor exactly as the binary parses
// them, and compares what run makes of it with the golden file (rewritten
// with -update). A golden file without its case fails too.
func runCases(t *testing.T, dir string, run func(t *testing.T, name, in string, flags []string, inj *inject.Injector) any) {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.yaml") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		goldenFile := strings.TrimSuffix(in, ".yaml") + ".golden.yaml"
		used[goldenFile] = true
		t.Run(name, func(t *testing.T) {
			flags := caseFlags(t, in)
			inj, err := cli.InjectorFor(append(append([]string{}, baseFlags...), flags...))
			if err != nil {
				t.Fatalf("flags %q: %v", flags, err)
			}
			podcase.CompareGolden(t, goldenFile, run(t, name, in, flags, inj), *update, "./internal/cli")
		})
	}
	podcase.CheckUnusedGoldens(t, dir, used)
}

// TestPipelineGolden runs every case of testdata/pipeline through the
// pipeline with its flags. An injected pod must pass Verify once the API
// server has named it (what the webhook writes, its validating endpoint
// accepts); for a pod that is not injected, Verify's answer on the pod as
// sent is recorded, which is how the forged-volume cases show their
// refusal.
func TestPipelineGolden(t *testing.T) {
	runCases(t, "testdata/pipeline", func(t *testing.T, name, in string, flags []string, inj *inject.Injector) any {
		pod, services, err := podcase.Load(in)
		if err != nil {
			t.Fatal(err)
		}
		out := inj.Inject(pod.DeepCopy(), services)
		g := pipelineGolden{Flags: flags, Warnings: out.Warnings}
		for _, e := range out.Errors {
			g.Errors = append(g.Errors, e.Error())
		}
		if out.Injected {
			g.Pod = out.Pod
			stored := out.Pod.DeepCopy()
			if stored.Name == "" {
				stored.Name = stored.GenerateName + "b7x2q"
			}
			if errs := inj.Verify(stored); len(errs) > 0 {
				t.Errorf("the validating endpoint refuses what the webhook wrote: %v", errs)
			}
			again := inj.Inject(out.Pod.DeepCopy(), services)
			if diff := cmp.Diff(out.Pod, again.Pod); diff != "" || !again.Injected {
				t.Errorf("a second run changed the pod (-first +second):\n%s%v", diff, again.Errors)
			}
		} else {
			for _, e := range inj.Verify(pod.DeepCopy()) {
				g.Verify = append(g.Verify, e.Error())
			}
		}
		if !out.Injected && len(g.Errors) == 0 && len(g.Verify) == 0 {
			t.Errorf("case %s is neither injected nor refused: it tests nothing", name)
		}
		return g
	})
}
