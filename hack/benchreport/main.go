// Command benchreport runs every benchmark of the project and writes
// docs/BENCHMARKS.md: each figure with its baseline and their ratio from
// the same run, medians over several runs, and pass/fail against the
// project's performance targets. `make bench` runs it:
//
//	go run ./hack/benchreport -out docs/BENCHMARKS.md
//
// Suites (each compiled once, then run several times):
//
//   - core: pkg/webhook's BenchmarkFloor, BenchmarkHandle, BenchmarkServeHTTP
//     (and BenchmarkVerifyVsFloor, the validating endpoint);
//   - parse: pkg/annotations' Parse of a 4 KiB value and of length bombs
//     and BenchmarkHandleVsFloor, in -rounds rounds of one run each, so every
//     round measures the handler and its floor minutes apart at most;
//   - demo, demo-handshake: demo-apps' keep-alive, reload and lookup
//     benchmarks, and the full-handshake benchmark with -cpu 1 (per core);
//   - load: test/load's BenchmarkWebhookLoad (the real binary over HTTPS,
//     needs the control plane in KUBEBUILDER_ASSETS);
//   - integration: test/integration's BenchmarkPodCreateLatency (needs the
//     control plane and HELM).
//
// A suite that fails (build, run, or a figure missing from its output) is
// reported as failed in the report, and the command exits 1 after writing
// it. Targets that are missed are results, not failures: they show as FAIL
// in the report, and the command exits 0 unless -strict.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/logtail"
)

func main() {
	var o options
	flag.StringVar(&o.out, "out", "docs/BENCHMARKS.md", "markdown report to write")
	flag.StringVar(&o.goCmd, "go", envOr("GO", "go"), "go command")
	flag.StringVar(&o.rawDir, "raw", "bin/bench", "directory for the raw benchmark output of each suite")
	flag.IntVar(&o.rounds, "rounds", 5, "runs of the core and demo suites (medians are taken over them)")
	flag.IntVar(&o.count, "count", 3, "runs of the load and integration suites (each starts a control plane once)")
	flag.StringVar(&o.only, "only", "", "comma list of suites to run (default: all): core,hostile,parse,demo,demo-handshake,load,integration")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed, too")
	flag.Float64Var(&o.quietLoad, "quiet-load", 1.0, "before each suite, wait until the 1-minute load average is below this (0: do not wait)")
	flag.DurationVar(&o.quietWait, "quiet-wait", 2*time.Minute, "longest wait for -quiet-load before a suite starts anyway")
	flag.Parse()
	code, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

type options struct {
	out, goCmd, rawDir, only string
	rounds, count            int
	strict                   bool
	quietLoad                float64
	quietWait                time.Duration
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// suite is one set of benchmark runs.
type suite struct {
	name    string
	what    string   // one line for the report
	pkg     string   // package directory, relative to the module root
	args    []string // benchmark flags, without the -test. prefix
	runs    int      // runs of the compiled test binary (rounds), or 0: one `go test -count`
	count   int      // -count for the go test form
	timeout time.Duration

	// Filled in by run.
	loadAtStart string
	cmdline     string
	results     []runResult // one per run, in order
	err         error
	duration    time.Duration
	raw         string
}

// runResult is the parsed output of one run: benchmark → unit → value.
// With -count > 1 in one process, the i-th result of each benchmark goes
// into the i-th runResult.
type runResult map[string]map[string]float64

func run(o options) (int, error) {
	root, err := moduleRoot(o.goCmd)
	if err != nil {
		return 1, err
	}
	if err := os.Chdir(root); err != nil {
		return 1, err
	}
	started := time.Now()
	m := readMachine(o.goCmd)
	procs := runtime.NumCPU()
	suites := []*suite{
		{name: "core", pkg: "pkg/webhook", runs: o.rounds, timeout: 10 * time.Minute,
			what: "admission handler vs decode+encode floor (in-process, no TLS)",
			args: []string{"-run=^$", "-bench=.", "-skip=^BenchmarkHostile", "-benchmem", "-benchtime=1s", cpuFlag(procs)}},
		{name: "hostile", pkg: "pkg/webhook", runs: o.rounds, timeout: 10 * time.Minute,
			what: "hostile reviews (a security review's inputs) and twice their size through the real HTTP handlers, beside the normal pod; the heap after 1,000 of them",
			args: []string{"-run=^$", "-bench=^BenchmarkHostile", "-benchmem", "-benchtime=1s", cpuFlag(procs)}},
		{name: "parse", pkg: "pkg/annotations", runs: o.rounds, timeout: 10 * time.Minute,
			what: "annotation parsing: a 4 KiB value, the 256 KB bomb read in full and twice that, the bomb refused unread",
			args: []string{"-run=^$", "-bench=^(BenchmarkParse4KiB|BenchmarkParseBomb|BenchmarkParse256KBRefused)$", "-benchmem", "-benchtime=1s", cpuFlag(procs)}},
		{name: "demo", pkg: "demo-apps/...", runs: o.rounds, timeout: 10 * time.Minute,
			what: "demo apps: keep-alive mTLS vs plain, certificate lookups with and without reloads",
			args: []string{"-run=^$", "-bench=^(BenchmarkKeepAliveMTLSvsPlain|BenchmarkGetConfigForClient|BenchmarkGetClientCertificate)$", "-benchmem", "-benchtime=1s", cpuFlag(procs)}},
		{name: "demo-handshake", pkg: "demo-apps/app", runs: o.rounds, timeout: 10 * time.Minute,
			what: "demo apps: full mTLS handshakes (client and server in one process) on one core",
			args: []string{"-run=^$", "-bench=^BenchmarkHandshake$", "-benchtime=1s", "-cpu=1"}},
		{name: "load", pkg: "test/load", count: o.count, timeout: 20 * time.Minute,
			what: "the real mtls-webhook binary over HTTPS under fixed-rate load (envtest API server)",
			args: []string{"-run=^$", "-bench=^BenchmarkWebhookLoad$", "-benchtime=1x", cpuFlag(procs)}},
		{name: "integration", pkg: "test/integration", count: o.count, timeout: 25 * time.Minute,
			what: "pod create latency through kube-apiserver with vs without the webhook; the handler in a namespace of 500 Services",
			args: []string{"-run=^$", "-bench=^(BenchmarkPodCreateLatency|BenchmarkHandlerInABigNamespace)$", "-benchtime=1x", cpuFlag(procs)}},
	}
	if o.only != "" {
		keep := strings.Split(o.only, ",")
		suites = slices.DeleteFunc(suites, func(s *suite) bool { return !slices.Contains(keep, s.name) })
	}
	if err := os.MkdirAll(o.rawDir, 0o755); err != nil {
		return 1, err
	}
	for _, s := range suites {
		fmt.Fprintf(os.Stderr, "benchreport: suite %s (%s)\n", s.name, s.pkg)
		s.loadAtStart = waitQuiet(o.quietLoad, o.quietWait)
		t0 := time.Now()
		s.err = s.execute(o.goCmd, o.rawDir)
		s.duration = time.Since(t0)
		if s.err == nil {
			s.err = checkFigures(s)
		}
		if err := os.WriteFile(filepath.Join(o.rawDir, s.name+".txt"), []byte(s.raw), 0o644); err != nil {
			return 1, err
		}
		status := "ok"
		if s.err != nil {
			status = "FAILED: " + s.err.Error()
		}
		fmt.Fprintf(os.Stderr, "benchreport: suite %s: %s in %s\n", s.name, status, s.duration.Round(time.Second))
	}
	m.loadEnd = loadavg()
	m.total = time.Since(started)

	rep := buildReport(m, suites)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return 1, err
	}
	if err := os.WriteFile(o.out, []byte(rep.markdown), 0o644); err != nil {
		return 1, err
	}
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s (%d figures, %d missed targets, %d failed suites) in %s\n",
		o.out, rep.figures, rep.missed, rep.failed, m.total.Round(time.Second))
	switch {
	case rep.failed > 0:
		return 1, nil
	case o.strict && rep.missed > 0:
		return 1, nil
	}
	return 0, nil
}

// waitQuiet waits, up to maxWait, for the 1-minute load average to fall
// below maxLoad, since the integration figures are absolute times that other
// work on the machine inflates; it returns the load the suite starts at,
// marked when the wait ran out.
func waitQuiet(maxLoad float64, maxWait time.Duration) string {
	deadline := time.Now().Add(maxWait)
	for {
		l := loadavg()
		one, err := strconv.ParseFloat(strings.Fields(l + " x")[0], 64)
		if maxLoad <= 0 || err != nil || one < maxLoad {
			return l
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "benchreport: load average still %s after %s; starting anyway\n", l, maxWait)
			return l + " (not quiet)"
		}
		time.Sleep(5 * time.Second)
	}
}

func cpuFlag(n int) string { return "-cpu=" + strconv.Itoa(n) }

func moduleRoot(goCmd string) (string, error) {
	out, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// execute runs the suite and parses its output into s.results.
func (s *suite) execute(goCmd, rawDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var raw bytes.Buffer
	defer func() { s.raw = raw.String() }()

	if s.runs == 0 {
		// One go test process runs every repetition (-count), sharing
		// its expensive set-up (the control plane).
		args := append([]string{"test", "-count=" + strconv.Itoa(s.count), "-timeout=" + s.timeout.String()}, s.args...)
		args = append(args, "./"+s.pkg)
		s.cmdline = goCmd + " " + strings.Join(args, " ")
		fmt.Fprintf(&raw, "$ %s\n", s.cmdline)
		cmd := exec.CommandContext(ctx, goCmd, args...)
		out := io.MultiWriter(&raw, os.Stderr)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 30 * time.Second
		err := cmd.Run()
		s.results = parseRuns(raw.String(), procsOf(s.args))
		if err != nil {
			return fmt.Errorf("%s: %w", s.cmdline, err)
		}
		return nil
	}

	// Compile once; each round runs the binaries once (-count 1), so the
	// figures compared within a round were measured close together.
	pkgs, err := listPackages(goCmd, s.pkg)
	if err != nil {
		return err
	}
	bins := map[string]string{}
	binDir, err := os.MkdirTemp("", "benchreport-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	for i, p := range pkgs {
		bin := filepath.Join(binDir, fmt.Sprintf("%s-%d.test", s.name, i))
		cmd := exec.CommandContext(ctx, goCmd, "test", "-c", "-o", bin, "./"+p.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(&raw, "$ go test -c ./%s\n%s", p.dir, out)
			return fmt.Errorf("go test -c ./%s: %w", p.dir, err)
		}
		if _, err := os.Stat(bin); err == nil { // no test files: no binary
			bins[p.dir] = bin
		}
	}
	testArgs := make([]string, 0, len(s.args)+1)
	for _, a := range s.args {
		testArgs = append(testArgs, "-test."+strings.TrimPrefix(a, "-"))
	}
	testArgs = append(testArgs, "-test.count=1")
	s.cmdline = fmt.Sprintf("go test -c ./%s, then %d rounds of <pkg>.test %s", s.pkg, s.runs, strings.Join(testArgs, " "))
	for r := range s.runs {
		var round bytes.Buffer
		for _, p := range pkgs {
			bin, ok := bins[p.dir]
			if !ok {
				continue
			}
			fmt.Fprintf(&raw, "$ (round %d) cd %s && %s %s\n", r+1, p.dir, filepath.Base(bin), strings.Join(testArgs, " "))
			cmd := exec.CommandContext(ctx, bin, testArgs...)
			cmd.Dir = p.dir // tests read testdata/ relative to their package
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.MultiWriter(&raw, &round), io.MultiWriter(&raw, &stderr)
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("round %d, %s: %w: %s", r+1, p.dir, err, logtail.Lines(stderr.String()+round.String(), 5))
			}
		}
		parsed := parseRuns(round.String(), procsOf(s.args))
		if len(parsed) == 0 {
			return fmt.Errorf("round %d: no benchmark results", r+1)
		}
		s.results = append(s.results, parsed[0])
	}
	return nil
}

type pkgDir struct{ dir string }

func listPackages(goCmd, pattern string) ([]pkgDir, error) {
	out, err := exec.Command(goCmd, "list", "-f", "{{.ImportPath}} {{.Dir}}", "./"+pattern).Output()
	if err != nil {
		return nil, fmt.Errorf("go list ./%s: %w", pattern, err)
	}
	wd, _ := os.Getwd()
	var pkgs []pkgDir
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		_, dir, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		rel, err := filepath.Rel(wd, dir)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, pkgDir{dir: rel})
	}
	return pkgs, nil
}

func procsOf(args []string) int {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "-cpu="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return runtime.GOMAXPROCS(0)
}

// parseRuns reads standard benchmark lines,
//
//	BenchmarkName-2   	    1234	   5678 ns/op	  12.3 custom-unit	 ...
//
// also when go test -v (or a benchmark writing to stderr) split the name
// from its figures. The GOMAXPROCS suffix -procs is removed from the name.
// The i-th line of a benchmark goes into the i-th runResult.
func parseRuns(out string, procs int) []runResult {
	var runs []runResult
	seen := map[string]int{}
	pending := ""
	add := func(name string, fields []string) bool {
		if len(fields) < 3 {
			return false
		}
		if _, err := strconv.ParseInt(fields[0], 10, 64); err != nil {
			return false
		}
		vals := map[string]float64{}
		for i := 1; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return false
			}
			vals[fields[i+1]] = v
		}
		if procs > 1 {
			name = strings.TrimSuffix(name, "-"+strconv.Itoa(procs))
		}
		i := seen[name]
		seen[name]++
		for len(runs) <= i {
			runs = append(runs, runResult{})
		}
		runs[i][name] = vals
		return true
	}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if strings.HasPrefix(fields[0], "Benchmark") {
			if len(fields) == 1 {
				pending = fields[0]
				continue
			}
			if add(fields[0], fields[1:]) {
				pending = ""
				continue
			}
			pending = fields[0]
			continue
		}
		if pending != "" && add(pending, fields) {
			pending = ""
		}
	}
	return runs
}
