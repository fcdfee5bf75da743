package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/logtail"
)

// machine describes where and when the figures were measured.
type machine struct {
	cpu, mem, goVersion, commit string
	cores                       int
	date                        time.Time
	loadStart, loadEnd          string
	total                       time.Duration
}

func readMachine(goCmd string) machine {
	m := machine{cpu: "unknown", mem: "unknown", cores: runtime.NumCPU(), date: time.Now().UTC(), loadStart: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.mem = fmt.Sprintf("%.1f GiB", kb/1024/1024)
			}
		}
	}
	if out, err := exec.Command(goCmd, "version").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	} else {
		m.goVersion = runtime.Version()
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
	}
	return m
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// figures each suite must produce: benchmark → units.
var required = map[string]map[string][]string{
	"core": {
		"BenchmarkFloor":                      {"ns/op", "allocs/op"},
		"BenchmarkHandle":                     {"ns/op", "allocs/op"},
		"BenchmarkServeHTTP":                  {"ns/op", "allocs/op"},
		"BenchmarkServeHTTPControllerRuntime": {"ns/op", "allocs/op"},
		"BenchmarkHandleVsFloor":              {"handle/floor", "floor-ns/op", "handle-ns/op"},
		"BenchmarkVerifyVsFloor":              {"verify/floor", "floor-ns/op", "verify-ns/op"},
		"BenchmarkServeHTTPVsFloor":           {"serve/floor", "floor-ns/op", "serve-ns/op"},
		"BenchmarkDeploymentFloor":            {"ns/op", "allocs/op"},
		"BenchmarkServeHTTPDeployment":        {"ns/op", "allocs/op"},
		"BenchmarkServeHTTPDeploymentVsFloor": {"serve/floor", "floor-ns/op", "serve-ns/op"},
	},
	"hostile": {
		"BenchmarkHostile/normal-pod":                       {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/long-unique-keys/scale=1":         {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/long-unique-keys/scale=2":         {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/45000-keys/scale=1":               {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/45000-keys/scale=2":               {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/unknown-keys/scale=1":             {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/unknown-keys/scale=2":             {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/forged-volume-attributes/scale=1": {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostile/forged-volume-attributes/scale=2": {"ns/op", "B/op", "allocs/op", "response-bytes"},
		"BenchmarkHostileHeap":                              {"heap-growth-bytes", "heap-after-bytes", "new-series"},
		"BenchmarkHostileServiceCache/whole":                {"bytes/service", "MiB/10k"},
		"BenchmarkHostileServiceCache/slim":                 {"bytes/service", "MiB/10k"},
	},
	"parse": {
		"BenchmarkParse4KiB":             {"ns/op", "allocs/op"},
		"BenchmarkParseBomb/names=18000": {"ns/op"},
		"BenchmarkParseBomb/names=36000": {"ns/op"},
		"BenchmarkParse256KBRefused":     {"ns/op"},
	},
	"demo": {
		"BenchmarkKeepAliveMTLSvsPlain":               {"mtls/plain", "plain-req/s", "mtls-req/s"},
		"BenchmarkGetConfigForClient/steady":          {"ns/op"},
		"BenchmarkGetConfigForClient/while-reloading": {"ns/op", "reloads"},
		"BenchmarkGetClientCertificate":               {"ns/op"},
	},
	"demo-handshake": {
		"BenchmarkHandshake/ecdsa-p256": {"handshakes/s"},
		"BenchmarkHandshake/rsa-2048":   {"handshakes/s"},
	},
	"load": {
		"BenchmarkWebhookLoad": {"p50-ms", "p99-ms", "errors-1k", "base-errors", "base-p50-ms", "base-p99-ms", "max-clean-rps", "rss-idle-MiB", "rss-load-MiB"},
	},
	"integration": {
		"BenchmarkPodCreateLatency": {"p50-with-ms", "p99-with-ms", "p50-without-ms", "p99-without-ms", "p50-added-ms", "p50-ratio", "p50-noop-ms", "handler-mean-ms",
			"p50-static-ms", "p50-preinjected-ms", "p50-any-webhook-ms", "p50-larger-pod-ms", "p50-patch-apply-ms", "p50-own-ms",
			"p50-added-with-policy-ms"},
		"BenchmarkHandlerInABigNamespace": {"default-cache-us", "slim-cache-us", "webhook-us", "webhook/default"},
	},
}

// checkFigures fails a suite whose runs lack a required figure.
func checkFigures(s *suite) error {
	want := required[s.name]
	if len(s.results) == 0 {
		return fmt.Errorf("no benchmark results in the output")
	}
	var missing []string
	for i, r := range s.results {
		for bench, units := range want {
			for _, u := range units {
				if _, ok := r[bench][u]; !ok {
					missing = append(missing, fmt.Sprintf("run %d: %s %s", i+1, bench, u))
				}
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("figures missing from the output: %s", strings.Join(missing, "; "))
	}
	return nil
}

// series is one figure over the runs of a suite.
func series(s *suite, bench, unit string) []float64 {
	var v []float64
	for _, r := range s.results {
		if x, ok := r[bench][unit]; ok {
			v = append(v, x)
		}
	}
	return v
}

// ratios is a/b run by run (same run, same moment).
func ratios(s *suite, benchA, unitA, benchB, unitB string) []float64 {
	var v []float64
	for _, r := range s.results {
		a, okA := r[benchA][unitA]
		b, okB := r[benchB][unitB]
		if okA && okB && b != 0 {
			v = append(v, a/b)
		}
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// target is a bound on a figure; zero value: none.
type target struct {
	op    string // "<=", ">=", "=="
	bound float64
	text  string
}

func (t target) check(v float64) string {
	if t.op == "" {
		return "—"
	}
	if math.IsNaN(v) {
		return "n/a"
	}
	ok := false
	switch t.op {
	case "<=":
		ok = v <= t.bound
	case ">=":
		ok = v >= t.bound
	case "==":
		ok = v == t.bound
	}
	if ok {
		return "pass"
	}
	return "**FAIL**"
}

func le(b float64, text string) target { return target{"<=", b, text} }
func ge(b float64, text string) target { return target{">=", b, text} }
func eq(b float64, text string) target { return target{"==", b, text} }

// row is one line of a figures table.
type row struct {
	figure, value, baseline, ratio, target, result, spread string
}

type report struct {
	markdown                string
	figures, missed, failed int
}

// format helpers; NaN (a missing figure) prints as n/a.
func fmtF(v float64, prec int, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if v >= 1000 && prec == 0 {
		s = thousands(int64(math.Round(v)))
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func us(ns float64) string { return fmtF(ns/1000, 1, "µs") }
func ms(v float64) string  { return fmtF(v, 2, "ms") }
func ratio(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmtF(v, 2, "×")
}

// spread is "min–max (n)" of the runs behind a median.
func spread(v []float64, f func(float64) string) string {
	if len(v) == 0 {
		return "n/a"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	return fmt.Sprintf("%s – %s (n=%d)", f(lo), f(hi), len(v))
}

func buildReport(m machine, suites []*suite) report {
	by := map[string]*suite{}
	for _, s := range suites {
		by[s.name] = s
	}
	var rep report
	var missed []string
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	w("# Benchmarks\n\n")
	w("Generated by `make bench` (`go run ./hack/benchreport -out docs/BENCHMARKS.md`); do not edit by hand.\n")
	w("Raw `go test -bench` output of the last run is in `bin/bench/<suite>.txt`.\n\n")
	w("%s", summaryMark)
	w("## How to read this\n\n")
	w("- Every **value** is the median over several runs (the spread column gives min – max and the number of runs).\n")
	w("- Every value has a **baseline** measured in the same run, on the same machine, at nearly the same moment, and\n")
	w("  the **ratio** is value ÷ baseline computed run by run, then the median taken. Compare ratios, not absolute\n")
	w("  times: this machine is shared with other builds, and absolute times drift by 25–35 %% between runs while\n")
	w("  ratios hold. The load average at the start and end of the run is given below for that reason.\n")
	w("- **target** is the project's goal for the figure; **result** is pass, **FAIL** (target missed), — (no target: the figure\n")
	w("  is informative) or n/a (the suite failed, see *Suites*).\n")
	w("- The reference points at the end were measured by others on a kind cluster's machine, not here: only their\n")
	w("  ratios to the same floor are comparable, roughly.\n\n")

	w("## Machine\n\n| | |\n|---|---|\n")
	w("| CPU | %s |\n| cores | %d |\n| memory | %s |\n| Go | %s |\n", m.cpu, m.cores, m.mem, m.goVersion)
	w("| date | %s |\n| commit | %s |\n", m.date.Format("2006-01-02 15:04 MST"), orDash(m.commit))
	w("| load average (1/5/15 min) at start | %s |\n| load average at end | %s |\n", m.loadStart, m.loadEnd)
	w("| total time | %s |\n\n", m.total.Round(time.Second))

	w("## Suites\n\n| suite | what | runs | time | load average at its start | status |\n|---|---|---|---|---|---|\n")
	for _, s := range suites {
		status := "ok"
		if s.err != nil {
			status = "**FAILED**"
			rep.failed++
		}
		w("| %s | %s | %d | %s | %s | %s |\n", s.name, s.what, len(s.results), s.duration.Round(time.Second), s.loadAtStart, status)
	}
	w("\n")
	for _, s := range suites {
		w("- `%s`: `%s`\n", s.name, s.cmdline)
	}
	w("\n")
	for _, s := range suites {
		if s.err != nil {
			w("### Suite %s failed\n\n```\n%s\n\n%s\n```\n\n", s.name, s.err, logtail.Lines(s.raw, 30))
		}
	}

	table := func(title, intro string, rows []row) {
		w("## %s\n\n%s\n\n", title, intro)
		w("| figure | value | baseline | ratio | target | result | spread of value |\n|---|---|---|---|---|---|---|\n")
		for _, r := range rows {
			w("| %s | %s | %s | %s | %s | %s | %s |\n", r.figure, r.value, r.baseline, r.ratio, r.target, r.result, r.spread)
			rep.figures++
			if r.result == "**FAIL**" {
				rep.missed++
				missed = append(missed, fmt.Sprintf("%s: %s (target %s)", strings.ReplaceAll(r.figure, "**", ""), r.value, r.target))
			}
		}
		w("\n")
	}
	// failedNote marks rows of a failed or absent suite.
	usable := func(name string) (*suite, bool) {
		s, ok := by[name]
		return s, ok && s.err == nil
	}
	mk := func(s *suite, ok bool, figure string, value, baseline float64, rs []float64, vf, bf func(float64) string, t target, checkOn string, vals []float64) row {
		r := row{figure: figure, target: orDash(t.text)}
		if !ok {
			r.value, r.baseline, r.ratio, r.result, r.spread = "n/a", "n/a", "n/a", "n/a (suite failed or not run)", "n/a"
			if t.op == "" {
				r.result = "n/a"
			}
			return r
		}
		r.value = vf(value)
		r.baseline = "—"
		if bf != nil {
			r.baseline = bf(baseline)
		}
		r.ratio = "—"
		rm := median(rs)
		if rs != nil {
			r.ratio = ratio(rm)
		}
		switch checkOn {
		case "ratio":
			r.result = t.check(rm)
		default:
			r.result = t.check(value)
		}
		r.spread = spread(vals, vf)
		return r
	}

	// Admission handler.
	{
		s, ok := usable("core")
		if s == nil {
			s = &suite{}
		}
		const hvf = "BenchmarkHandleVsFloor"
		handle, floor := series(s, hvf, "handle-ns/op"), series(s, hvf, "floor-ns/op")
		hAllocs, fAllocs := series(s, "BenchmarkHandle", "allocs/op"), series(s, "BenchmarkFloor", "allocs/op")
		sAllocs := series(s, "BenchmarkServeHTTP", "allocs/op")
		hNs, fNs, sNs := series(s, "BenchmarkHandle", "ns/op"), series(s, "BenchmarkFloor", "ns/op"), series(s, "BenchmarkServeHTTP", "ns/op")
		crNs := series(s, "BenchmarkServeHTTPControllerRuntime", "ns/op")
		allocs := func(v float64) string { return fmtF(v, 0, "allocs/op") }
		rows := []row{
			mk(s, ok, "**Handle ÷ floor, same loop** (BenchmarkHandleVsFloor: each iteration times the floor, then Handle)",
				median(handle), median(floor), series(s, hvf, "handle/floor"), us, us, le(1.2, "≤ 1.20 × floor"), "ratio", handle),
			mk(s, ok, "Handle (BenchmarkHandle) vs BenchmarkFloor, ns/op", median(hNs), median(fNs),
				ratios(s, "BenchmarkHandle", "ns/op", "BenchmarkFloor", "ns/op"), us, us, le(1.2, "≤ 1.20 × floor"), "ratio", hNs),
			mk(s, ok, "Handle vs floor, allocs/op", median(hAllocs), median(fAllocs),
				ratios(s, "BenchmarkHandle", "allocs/op", "BenchmarkFloor", "allocs/op"), allocs, allocs, target{}, "", hAllocs),
			mk(s, ok, "ServeHTTP (AdmissionReview in and out through NewHTTPHandler, no TLS) vs floor, ns/op", median(sNs), median(fNs),
				ratios(s, "BenchmarkServeHTTP", "ns/op", "BenchmarkFloor", "ns/op"), us, us, target{}, "", sNs),
			mk(s, ok, "ServeHTTP vs floor, allocs/op", median(sAllocs), median(fAllocs),
				ratios(s, "BenchmarkServeHTTP", "allocs/op", "BenchmarkFloor", "allocs/op"), allocs, allocs, target{}, "", sAllocs),
			mk(s, ok, "ServeHTTP vs the same handler behind controller-runtime's generic admission.Webhook (BenchmarkServeHTTPControllerRuntime, the path served before), ns/op",
				median(sNs), median(crNs), ratios(s, "BenchmarkServeHTTP", "ns/op", "BenchmarkServeHTTPControllerRuntime", "ns/op"), us, us, target{}, "", sNs),
			mk(s, ok, "ServeHTTP vs controller-runtime's generic path, allocs/op", median(sAllocs), median(series(s, "BenchmarkServeHTTPControllerRuntime", "allocs/op")),
				ratios(s, "BenchmarkServeHTTP", "allocs/op", "BenchmarkServeHTTPControllerRuntime", "allocs/op"), allocs, allocs, target{}, "", sAllocs),
			mk(s, ok, "/validate-pods on the pod the webhook injected, same loop as the floor (BenchmarkVerifyVsFloor)",
				median(series(s, "BenchmarkVerifyVsFloor", "verify-ns/op")), median(series(s, "BenchmarkVerifyVsFloor", "floor-ns/op")),
				series(s, "BenchmarkVerifyVsFloor", "verify/floor"), us, us, target{}, "", series(s, "BenchmarkVerifyVsFloor", "verify-ns/op")),
			mk(s, ok, "ServeHTTP ÷ floor, same loop (BenchmarkServeHTTPVsFloor: the floor, then the review through NewHTTPHandler)",
				median(series(s, "BenchmarkServeHTTPVsFloor", "serve-ns/op")), median(series(s, "BenchmarkServeHTTPVsFloor", "floor-ns/op")),
				series(s, "BenchmarkServeHTTPVsFloor", "serve/floor"), us, us, target{}, "", series(s, "BenchmarkServeHTTPVsFloor", "serve-ns/op")),
			mk(s, ok, "**/validate-workloads ÷ the Deployment's floor, same loop** (BenchmarkServeHTTPDeploymentVsFloor: `testdata/peer-deployment.json` decoded and encoded as a typed `appsv1.Deployment`, then its review through NewWorkloadHTTPHandler)",
				median(series(s, "BenchmarkServeHTTPDeploymentVsFloor", "serve-ns/op")), median(series(s, "BenchmarkServeHTTPDeploymentVsFloor", "floor-ns/op")),
				series(s, "BenchmarkServeHTTPDeploymentVsFloor", "serve/floor"), us, us, le(1.3, "≤ 1.30 × floor"), "ratio", series(s, "BenchmarkServeHTTPDeploymentVsFloor", "serve-ns/op")),
			mk(s, ok, "/validate-workloads (BenchmarkServeHTTPDeployment) vs BenchmarkDeploymentFloor, allocs/op",
				median(series(s, "BenchmarkServeHTTPDeployment", "allocs/op")), median(series(s, "BenchmarkDeploymentFloor", "allocs/op")),
				ratios(s, "BenchmarkServeHTTPDeployment", "allocs/op", "BenchmarkDeploymentFloor", "allocs/op"), allocs, allocs, target{}, "", series(s, "BenchmarkServeHTTPDeployment", "allocs/op")),
		}
		table("Admission handler (pkg/webhook)",
			"The peer pod (`pkg/webhook/testdata/peer-pod.json`, namespace `prod`, injected) from request to response with\n"+
				"the patch bytes. The **floor** is `encoding/json` decode + encode of the same typed `corev1.Pod`: what any\n"+
				"handler pays at least. The first row is the primary figure: both halves are timed inside one loop, so\n"+
				"machine load hits them alike. The other rows pair separate benchmarks of the same round (seconds apart).", rows)
	}

	// Annotation parsing.
	{
		s, ok := usable("parse")
		if s == nil {
			s = &suite{}
		}
		p4, b43, b86 := series(s, "BenchmarkParse4KiB", "ns/op"), series(s, "BenchmarkParseBomb/names=18000", "ns/op"), series(s, "BenchmarkParseBomb/names=36000", "ns/op")
		refused := series(s, "BenchmarkParse256KBRefused", "ns/op")
		msNs := func(ns float64) string { return fmtF(ns/1e6, 1, "ms") }
		rows := []row{
			mk(s, ok, "**Parse of a 4 KiB annotation** (BenchmarkParse4KiB: `dns-names` of exactly `--max-annotation-bytes`, 64 names of 63 characters)",
				median(p4), math.NaN(), nil, us, nil, le(1e6, "< 1 ms"), "value", p4),
			mk(s, ok, "a bomb read in full with the value limits lifted (18,000 distinct names, 115 KB; the quadratic parser took 5–21 s on 43,000 names in 284 KB, which the 256 KiB total now refuses first)",
				median(b43), math.NaN(), nil, msNs, nil, target{}, "", b43),
			mk(s, ok, "twice the names (36,000, 241 KB) vs the bomb: linear parsing costs about 2 ×", median(b86), median(b43),
				ratios(s, "BenchmarkParseBomb/names=36000", "ns/op", "BenchmarkParseBomb/names=18000", "ns/op"), msNs, msNs, le(2.6, "≤ 2.6 × (linear)"), "ratio", b86),
			mk(s, ok, "the bomb with the default limits: refused unread", median(refused), math.NaN(), nil, us, nil, target{}, "", refused),
		}
		table("Annotation parsing (pkg/annotations)",
			"What one pod's annotations may cost. Values over `--max-annotation-bytes` (4096) are refused before\n"+
				"they are read, so the 4 KiB row is the most a pod can make `Parse` do with the default limits; the bomb rows lift\n"+
				"the limits to show that parsing itself is linear. Fuzzing is not part of `make bench`: `make fuzz FUZZTIME=30s` on\n"+
				"2026-12-01 ran FuzzParseLengthBombs 6,125 execs, FuzzParse 162,983, FuzzHandle 18,975 and FuzzServeHTTP 2,633,\n"+
				"without failures; the inputs they found are in `testdata/fuzz`.", rows)
	}

	// Hostile reviews.
	{
		s, ok := usable("hostile")
		if s == nil {
			s = &suite{}
		}
		const hb = "BenchmarkHostile/"
		msNs := func(ns float64) string { return fmtF(ns/1e6, 2, "ms") }
		bytesF := func(v float64) string { return fmtF(v, 0, "B") }
		mibF := func(v float64) string { return fmtF(v/(1<<20), 1, "MiB") }
		count := func(v float64) string { return fmtF(v, 0, "") }
		mibOf := func(v float64) string { return fmtF(v, 1, "MiB") }
		normal := hb + "normal-pod"
		rows := []row{
			mk(s, ok, "the normal peer pod through /mutate-pods (the baseline of the rows below)", median(series(s, normal, "ns/op")), math.NaN(), nil,
				msNs, nil, target{}, "", series(s, normal, "ns/op")),
			mk(s, ok, "the normal pod's answer", median(series(s, normal, "response-bytes")), math.NaN(), nil, bytesF, nil, target{}, "", series(s, normal, "response-bytes")),
		}
		for _, c := range []struct{ name, what string }{
			{"long-unique-keys", "20 unique mtls.demo/ keys of 1 KB with 5 KB values and a 5 KB dns-names (126 KB; twice: 40 keys, 247 KB)"},
			{"45000-keys", "45,000 mtls.demo/ keys in 3 MB (before: 2.4 s, 280 MiB allocated, a 21 MB answer); twice: 6 MB, refused at the body limit"},
			{"unknown-keys", "1,000 unknown mtls.demo/ keys of 120 bytes, all read (127 KB; twice: 2,000 in 254 KB, under the 256 KiB total)"},
			{"forged-volume-attributes", "/validate-pods: a forged volume with 500 unique 220-byte attributes (217 KB; twice: 1,000)"},
		} {
			one, two := hb+c.name+"/scale=1", hb+c.name+"/scale=2"
			rows = append(rows,
				mk(s, ok, "**"+c.name+"**: "+c.what+", time vs the normal pod", median(series(s, one, "ns/op")), median(series(s, normal, "ns/op")),
					ratios(s, one, "ns/op", normal, "ns/op"), msNs, msNs, target{}, "", series(s, one, "ns/op")),
				mk(s, ok, c.name+": twice the size vs once, time (decoding is linear; nothing else grows)", median(series(s, two, "ns/op")), median(series(s, one, "ns/op")),
					ratios(s, two, "ns/op", one, "ns/op"), msNs, msNs, le(2.6, "≤ 2.6 ×"), "ratio", series(s, two, "ns/op")),
				mk(s, ok, c.name+": allocated per request, twice the size vs once", median(series(s, two, "B/op")), median(series(s, one, "B/op")),
					ratios(s, two, "B/op", one, "B/op"), bytesF, bytesF, le(2.6, "≤ 2.6 ×"), "ratio", series(s, two, "B/op")),
				mk(s, ok, c.name+": the answer's size, twice vs once", median(series(s, two, "response-bytes")), median(series(s, one, "response-bytes")),
					ratios(s, two, "response-bytes", one, "response-bytes"), bytesF, bytesF, le(1.1, "≤ 1.1 × (flat)"), "ratio", series(s, two, "response-bytes")),
			)
		}
		heap := "BenchmarkHostileHeap"
		rows = append(rows,
			mk(s, ok, "**live heap growth over 1,000 hostile requests** (after one round of each; before: +53 MiB over 20)", median(series(s, heap, "heap-growth-bytes")), median(series(s, heap, "heap-after-bytes")),
				nil, mibF, mibF, le(4<<20, "≤ 4 MiB"), "value", series(s, heap, "heap-growth-bytes")),
			mk(s, ok, "metric series created by those 1,000 requests (before: 30 per request)", median(series(s, heap, "new-series")), math.NaN(), nil,
				count, nil, eq(0, "0"), "value", series(s, heap, "new-series")),
			mk(s, ok, "**the Service cache with 10,000 Services**, slimmed by the informer's transform vs whole (kubectl's 2 KiB last-applied annotation, managed fields, ports, status)",
				median(series(s, "BenchmarkHostileServiceCache/slim", "MiB/10k")), median(series(s, "BenchmarkHostileServiceCache/whole", "MiB/10k")),
				ratios(s, "BenchmarkHostileServiceCache/slim", "MiB/10k", "BenchmarkHostileServiceCache/whole", "MiB/10k"), mibOf, mibOf, target{}, "", series(s, "BenchmarkHostileServiceCache/slim", "MiB/10k")),
		)
		table("Hostile reviews (pkg/webhook)",
			"The reviews of a security review of the webhook, each once and at twice its size, as AdmissionReviews through the\n"+
				"real HTTP handlers (`NewHTTPHandler`, `NewVerifyHTTPHandler`) of one webhook with its metrics\n"+
				"(`pkg/webhook/hostile_test.go`). Time and allocations grow only with decoding the body; the answer stays\n"+
				"the same size. The heap row's baseline column is the live heap after the 1,000 requests.", rows)
	}

	// HTTPS load.
	{
		s, ok := usable("load")
		if s == nil {
			s = &suite{}
		}
		const lb = "BenchmarkWebhookLoad"
		p50, p99 := series(s, lb, "p50-ms"), series(s, lb, "p99-ms")
		errs, maxRate := series(s, lb, "errors-1k"), series(s, lb, "max-clean-rps")
		idle, peak := series(s, lb, "rss-idle-MiB"), series(s, lb, "rss-load-MiB")
		mib := func(v float64) string { return fmtF(v, 1, "MiB") }
		rps := func(v float64) string { return fmtF(v, 0, "req/s") }
		count := func(v float64) string { return fmtF(v, 0, "") }
		rows := []row{
			mk(s, ok, "p50 latency at 1,000 req/s for 10 s", median(p50), median(series(s, lb, "base-p50-ms")),
				ratios(s, lb, "p50-ms", lb, "base-p50-ms"), ms, ms, target{}, "", p50),
			mk(s, ok, "**p99 latency at 1,000 req/s for 10 s**", median(p99), median(series(s, lb, "base-p99-ms")),
				ratios(s, lb, "p99-ms", lb, "base-p99-ms"), ms, ms, le(5, "≤ 5 ms"), "value", p99),
			mk(s, ok, "errors and wrong answers at 1,000 req/s", median(errs), median(series(s, lb, "base-errors")),
				nil, count, count, eq(0, "0"), "value", errs),
			mk(s, ok, "highest rate held with 0 errors (ramp 1k, 2k, 3k, 4k, 5k, 6k, 8k, 10k… 5 s a step; stops at errors, p99 > 50 ms or a rate not held)",
				median(maxRate), math.NaN(), nil, rps, nil, target{}, "", maxRate),
			mk(s, ok, "resident memory (VmRSS) at idle, 3 s after /readyz", median(idle), math.NaN(), nil, mib, nil, target{}, "", idle),
			mk(s, ok, "peak resident memory under the load (VmHWM) vs idle", median(peak), median(idle),
				ratios(s, lb, "rss-load-MiB", lb, "rss-idle-MiB"), mib, mib, target{}, "", peak),
		}
		table("The webhook over HTTPS under load (test/load)",
			"The real binary (`go build ./cmd/webhook`, `mtls-webhook serve --default-issuer demo-ca`) against an envtest\n"+
				"kube-apiserver, with a self-signed ECDSA P-256 serving certificate. A fixed-rate, open-loop generator (request i\n"+
				"is due at start + i/rate, whatever the previous ones did) POSTs the peer pod's AdmissionReview over keep-alive\n"+
				"HTTP/1.1 TLS connections; every answer must be `allowed` with a JSONPatch for the request's uid, anything else\n"+
				"counts as an error. The **baseline** is the same generator at the same rate against a minimal in-process HTTPS\n"+
				"server returning the webhook's answer verbatim: TLS, loopback, HTTP and the generator's own cost. Generator and\n"+
				"webhook share the machine's cores, so the highest rate is a lower bound for a webhook with cores of its own.\n"+
				"A ramp step that fails on p99 alone is tried once more (the machine is shared).", rows)
	}

	// Through the API server.
	{
		s, ok := usable("integration")
		if s == nil {
			s = &suite{}
		}
		const ib = "BenchmarkPodCreateLatency"
		w50, w99, added := series(s, ib, "p50-with-ms"), series(s, ib, "p99-with-ms"), series(s, ib, "p50-added-ms")
		hm := series(s, ib, "handler-mean-ms")
		rows := []row{
			mk(s, ok, "pod create p50, with the webhook vs without", median(w50), median(series(s, ib, "p50-without-ms")),
				series(s, ib, "p50-ratio"), ms, ms, target{}, "", w50),
			mk(s, ok, "pod create p99, with the webhook vs without", median(w99), median(series(s, ib, "p99-without-ms")),
				ratios(s, ib, "p99-with-ms", ib, "p99-without-ms"), ms, ms, target{}, "", w99),
			mk(s, ok, "**added at p50** (p50 with − p50 without, same run)", median(added), math.NaN(), nil, ms, nil,
				le(1.5, "≤ 1.5 ms"), "value", added),
			mk(s, ok, "added at p50 with the chart's ValidatingAdmissionPolicy as well (what the chart's default install costs)", median(series(s, ib, "p50-added-with-policy-ms")), math.NaN(), nil, ms, nil,
				target{}, "", series(s, ib, "p50-added-with-policy-ms")),
			mk(s, ok, "webhook handler mean (its own histogram, mtls_webhook_mutation_duration_seconds: body read to response written)", median(hm), math.NaN(), nil, ms, nil,
				target{}, "", hm),
		}
		part := func(name, metric string) row {
			v := series(s, ib, metric)
			return mk(s, ok, name, median(v), math.NaN(), nil, ms, nil, target{}, "", v)
		}
		parts := []row{
			part("calling any webhook: no-op webhook − without (matchConditions, review encoding, TLS round trip)", "p50-any-webhook-ms"),
			part("the larger pod: pre-injected pod, no webhook − without (validation, managed fields, storage; hand-written YAML pays it too)", "p50-larger-pod-ms"),
			part("applying the patch: cached-patch webhook − no-op − larger pod (encode, apply, decode, compare, default, reinvoke in-tree plugins)", "p50-patch-apply-ms"),
			part("**mtls-webhook's own share**: with − cached-patch webhook (its HTTP server, decoding, Services lookup, pipeline, patch)", "p50-own-ms"),
			mk(s, ok, "pod create p50 through a no-op webhook vs without", median(series(s, ib, "p50-noop-ms")), median(series(s, ib, "p50-without-ms")),
				ratios(s, ib, "p50-noop-ms", ib, "p50-without-ms"), ms, ms, target{}, "", series(s, ib, "p50-noop-ms")),
			mk(s, ok, "pod create p50 through the cached-patch webhook vs without", median(series(s, ib, "p50-static-ms")), median(series(s, ib, "p50-without-ms")),
				ratios(s, ib, "p50-static-ms", ib, "p50-without-ms"), ms, ms, target{}, "", series(s, ib, "p50-static-ms")),
			mk(s, ok, "pod create p50 of the pre-injected pod (no webhook) vs without", median(series(s, ib, "p50-preinjected-ms")), median(series(s, ib, "p50-without-ms")),
				ratios(s, ib, "p50-preinjected-ms", ib, "p50-without-ms"), ms, ms, target{}, "", series(s, ib, "p50-preinjected-ms")),
		}
		rows = append(rows, parts...)
		const bn = "BenchmarkHandlerInABigNamespace"
		micro := func(v float64) string { return fmtF(v, 0, "µs") }
		web := series(s, bn, "webhook-us")
		slimUs := series(s, bn, "slim-cache-us")
		rows = append(rows,
			mk(s, ok, "handler in a namespace of 500 Services (each with kubectl's 2 KiB last-applied annotation), through the webhook's cache: slimmed Services, no deep copy, a selector index (BenchmarkHandlerInABigNamespace) vs controller-runtime's default cache listing them all",
				median(web), median(series(s, bn, "default-cache-us")), series(s, bn, "webhook/default"), micro, micro, target{}, "", web),
			mk(s, ok, "the same with the slimmed, shared cache but no index: every Service listed vs the default cache",
				median(slimUs), median(series(s, bn, "default-cache-us")), ratios(s, bn, "slim-cache-us", bn, "default-cache-us"), micro, micro, target{}, "", slimUs),
		)
		table("Through the real API server (test/integration)",
			"`BenchmarkPodCreateLatency`: 300 opted-in pods created one at a time in a namespace the chart's webhook\n"+
				"configuration selects (API server → webhook over TLS → patch → validation → etcd) and 300 in one it excludes,\n"+
				"after 30 warm-up creations each way; envtest kube-apiserver and etcd, the chart's own\n"+
				"MutatingWebhookConfiguration rendered by helm. Three more series, interleaved with those two (each pod of\n"+
				"a round in turn, the order rotating), split the added time into its parts: a **no-op** webhook (allowed, no\n"+
				"patch, at once), a **cached-patch** webhook (answers at once with the very patch mtls-webhook returned for\n"+
				"this pod) and the **pre-injected** pod (what mtls-webhook produces, created with no webhook at all). A sixth\n"+
				"adds the chart's ValidatingAdmissionPolicy to mtls-webhook, as the chart installs both by default. The\n"+
				"parts are differences of p50s, so they add up to the total only roughly. Each run is a fresh set of\n"+
				"namespaces in one control plane.", rows)
	}

	// Demo apps.
	{
		s, ok := usable("demo")
		if s == nil {
			s = &suite{}
		}
		hs, hok := usable("demo-handshake")
		if hs == nil {
			hs = &suite{}
		}
		const ka, gc = "BenchmarkKeepAliveMTLSvsPlain", "BenchmarkGetConfigForClient"
		mtls := series(s, ka, "mtls-req/s")
		ecdsa := series(hs, "BenchmarkHandshake/ecdsa-p256", "handshakes/s")
		reload := series(s, gc+"/while-reloading", "ns/op")
		gcc := series(s, "BenchmarkGetClientCertificate", "ns/op")
		reqs := func(v float64) string { return fmtF(v, 0, "req/s") }
		hps := func(v float64) string { return fmtF(v, 0, "handshakes/s") }
		ns := func(v float64) string { return fmtF(v, 1, "ns/op") }
		rows := []row{
			mk(s, ok, "**keep-alive throughput, mTLS vs plain** (client → frontend → backend, 4 workers)", median(mtls),
				median(series(s, ka, "plain-req/s")), series(s, ka, "mtls/plain"), reqs, reqs, ge(0.8, "≥ 0.80 × plain"), "ratio", mtls),
			mk(hs, hok, "full mTLS handshakes per core, ECDSA P-256 vs RSA-2048 (`-cpu 1`, client and server sides both on that core, no resumption)",
				median(ecdsa), median(series(hs, "BenchmarkHandshake/rsa-2048", "handshakes/s")),
				ratios(hs, "BenchmarkHandshake/ecdsa-p256", "handshakes/s", "BenchmarkHandshake/rsa-2048", "handshakes/s"), hps, hps, target{}, "", ecdsa),
			mk(s, ok, "reload cost: server certificate lookup (GetConfigForClient) while another goroutine reloads vs steady", median(reload),
				median(series(s, gc+"/steady", "ns/op")), ratios(s, gc+"/while-reloading", "ns/op", gc+"/steady", "ns/op"), ns, ns, target{}, "", reload),
			mk(s, ok, "reloads completed during the while-reloading run", median(series(s, gc+"/while-reloading", "reloads")), math.NaN(), nil,
				func(v float64) string { return fmtF(v, 0, "") }, nil, target{}, "", series(s, gc+"/while-reloading", "reloads")),
			mk(s, ok, "client certificate lookup (GetClientCertificate)", median(gcc), math.NaN(), nil, ns, nil, target{}, "", gcc),
		}
		table("Demo apps (demo-apps/)",
			"`demo-apps/app` and `demo-apps/certs` benchmarks. Keep-alive plain and mTLS batches alternate within one\n"+
				"benchmark, so their ratio is from the same moments. Handshakes are complete TLS 1.3 mutual handshakes against\n"+
				"the demo's own server configuration; with `-cpu 1` the rate is per core, for both ends together.", rows)
	}

	w("## Reference points (measured elsewhere on a kind machine, not in this run)\n\n")
	w("For the same peer pod. The ratio column divides by the midpoint of that machine's floor (42–56 µs/op → 49 µs/op);\n")
	w("compare it, roughly, with the ratios above.\n\n")
	w("| implementation | time | allocs/op | ≈ ratio to its floor |\n|---|---|---|---|\n")
	w("| floor: encoding/json decode + encode of the typed pod | 42–56 µs/op | 152 | 1.00 × |\n")
	w("| EKS pod-identity webhook, handler (request → response with patch bytes) | 51–69 µs/op | 175 | ≈ 1.22 × |\n")
	w("| EKS pod-identity webhook, through its HTTP handler | 108–150 µs/op | — | ≈ 2.6 × |\n")
	w("| Azure Workload Identity webhook, handler (controller-runtime `PatchResponseFromRaw`) | 194–245 µs/op | 1,176 | ≈ 4.5 × |\n")
	w("| Azure Workload Identity webhook, through ServeHTTP | 383 µs/op | 1,370 | ≈ 7.8 × |\n")

	var sum strings.Builder
	fmt.Fprintf(&sum, "**Summary:** %d figures, %d failed suites, %d missed targets.\n", rep.figures, rep.failed, rep.missed)
	for _, s := range suites {
		if s.err != nil {
			fmt.Fprintf(&sum, "- suite **%s failed**: its figures are n/a (see *Suites*)\n", s.name)
		}
	}
	for _, m := range missed {
		fmt.Fprintf(&sum, "- target missed: %s\n", m)
	}
	sum.WriteString("\n")
	rep.markdown = strings.Replace(b.String(), summaryMark, sum.String(), 1)
	return rep
}

// summaryMark is replaced by the summary once every table is built.
const summaryMark = "\x00summary\x00"

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
