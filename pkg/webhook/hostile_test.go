package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// The reviews of the security review, each at a scale (1 as reported, 2
// twice its size). Anyone who reaches the webhook's port can send them, and
// through the API server anyone who may create a pod: annotation keys are
// validated only after mutating admission.
type hostileReview struct {
	name string
	path string // Path or VerifyPath
	pod  func(scale int) *corev1.Pod
	// refused is the answer the review must get; otherwise it is allowed
	// with the bounded warnings (MaxUnknownKeyWarnings and a count).
	refused bool
}

// roundMark is in every key a hostile review makes up, so that a request
// can rename all of them at once (same length, same size) and no two
// requests share a key: anything the webhook kept per key would pile up.
const roundMark = "R00000"

// forRound renames the made-up keys of body for request i.
func forRound(body []byte, i int) []byte {
	return bytes.ReplaceAll(body, []byte(roundMark), fmt.Appendf(nil, "R%05d", i%100000))
}

var hostileReviews = []hostileReview{
	{
		// Unique, long mtls.demo/ keys with over-long values, and a known
		// key over --max-annotation-bytes: each unknown key was a denial
		// cause and a metric series of its own (20 requests grew the heap
		// by 53 MiB and left 600 series).
		name: "long-unique-keys", path: Path, refused: true,
		pod: func(scale int) *corev1.Pod {
			p := hostileBase()
			for i := range 20 * scale {
				p.Annotations[fmt.Sprintf("%s%s%04d-%s", annotations.Prefix, roundMark, i, strings.Repeat("k", 1000))] = strings.Repeat("v", 5000)
			}
			p.Annotations[annotations.DNSNames] = strings.Repeat("a,", 2500)
			return p
		},
	},
	{
		// 45,000 prefixed keys in about 3 MB: typo suggestions ran over
		// every one (2.4 s, 280 MiB of allocations, 21 MB of warnings).
		name: "45000-keys", path: Path, refused: true,
		pod: func(scale int) *corev1.Pod {
			p := hostileBase()
			for i := range 45000 * scale {
				p.Annotations[fmt.Sprintf("%s%s%019d", annotations.Prefix, roundMark, i)] = strings.Repeat("v", 24)
			}
			return p
		},
	},
	{
		// Unknown keys under the API server's 256 KiB total (1,000 in
		// 127 KB, 2,000 in 254 KB), so that they are all read: every one is
		// looked at, a few are warned of.
		name: "unknown-keys", path: Path,
		pod: func(scale int) *corev1.Pod {
			p := hostileBase()
			for i := range 1000 * scale {
				p.Annotations[fmt.Sprintf("%sissuer%s%04d%s", annotations.Prefix, roundMark, i, strings.Repeat("z", 94))] = "x"
			}
			return p
		},
	},
	{
		// A hand-written csi.cert-manager.io volume with thousands of
		// unique, long attributes: each was an error, and its key a label.
		name: "forged-volume-attributes", path: VerifyPath, refused: true,
		pod: func(scale int) *corev1.Pod {
			p := hostileBase()
			attrs := map[string]string{mutate.AttrIssuerName: "corp-ca"}
			for i := range 500 * scale {
				attrs[fmt.Sprintf("csi.cert-manager.io/%s%05d-%s", roundMark, i, strings.Repeat("a", 194))] = strings.Repeat("b", 200)
			}
			p.Spec.Volumes = []corev1.Volume{{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: mutate.Driver, ReadOnly: new(true), VolumeAttributes: attrs}}}}
			return p
		},
	},
}

func hostileBase() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "x-" + strings.Repeat("n", 200), Namespace: "prod",
			Annotations: map[string]string{annotations.Enable: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
}

// hostileServer is one webhook process: both pod endpoints on one Handler
// with its metrics.
type hostileServer struct {
	reg            *prometheus.Registry
	mutate, verify http.Handler
}

func newHostileServer(tb testing.TB) hostileServer {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		tb.Fatal(err)
	}
	h := &Handler{Injector: testInjector(tb), Metrics: m}
	return hostileServer{reg: reg, mutate: NewHTTPHandler(h), verify: NewVerifyHTTPHandler(h)}
}

// serve sends body to the endpoint and returns the status and response
// size.
func (s hostileServer) serve(path string, body []byte) (int, int) {
	code, resp := s.answer(path, body)
	return code, len(resp)
}

// answer sends body to the endpoint and returns the status and response.
func (s hostileServer) answer(path string, body []byte) (int, []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	if path == VerifyPath {
		s.verify.ServeHTTP(w, req)
	} else {
		s.mutate.ServeHTTP(w, req)
	}
	return w.Code, w.Body.Bytes()
}

// check fails unless resp is the answer hr must get: a refusal, or an
// allowance with at most MaxUnknownKeyWarnings warnings and the count.
func (hr hostileReview) check(tb testing.TB, resp []byte) {
	tb.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(resp, &ar); err != nil || ar.Response == nil {
		tb.Fatalf("%s: the answer is no AdmissionReview: %v", hr.name, err)
	}
	if ar.Response.Allowed == hr.refused {
		tb.Fatalf("%s: allowed = %t, want %t (%v)", hr.name, ar.Response.Allowed, !hr.refused, ar.Response.Result)
	}
	if hr.refused {
		return
	}
	unknown, counted := 0, 0
	for _, w := range ar.Response.Warnings {
		switch {
		case strings.Contains(w, "is not known and is ignored"):
			unknown++
		case strings.Contains(w, "more annotations under "+annotations.Prefix+" are not known"):
			counted++
		}
	}
	if unknown != annotations.MaxUnknownKeyWarnings || counted != 1 || len(ar.Response.Warnings) > MaxWarnings+1 {
		tb.Fatalf("%s: %d unknown-key warnings and %d counts among %d, want %d and 1: %q", hr.name, unknown, counted,
			len(ar.Response.Warnings), annotations.MaxUnknownKeyWarnings, ar.Response.Warnings)
	}
}

// series counts the metric series the registry holds.
func (s hostileServer) series(tb testing.TB) int {
	mfs, err := s.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// allocated is the bytes f allocates, averaged over runs.
func allocated(runs int, f func()) float64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&b)
	return float64(b.TotalAlloc-a.TotalAlloc) / float64(runs)
}

// decodeFloor is what reading a review costs at least: the AdmissionReview
// and its pod decoded once.
func decodeFloor(tb testing.TB, body []byte) {
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		tb.Fatal(err)
	}
	var p corev1.Pod
	if err := json.Unmarshal(ar.Request.Object.Raw, &p); err != nil {
		tb.Fatal(err)
	}
}

// TestHostileReviewsCostNoMoreThanReadingThem sends each hostile review,
// and twice its size, through the real HTTP handlers: the answer is a
// refusal (or a bounded warning list), its size does not grow with the
// input, and the bytes allocated stay within a small multiple of decoding
// the review once. (Time is measured in BenchmarkHostile, not here.)
func TestHostileReviewsCostNoMoreThanReadingThem(t *testing.T) {
	s := newHostileServer(t)
	const maxResponse = 16 << 10
	for _, hr := range hostileReviews {
		t.Run(hr.name, func(t *testing.T) {
			var sizes [2]int
			for i, scale := range []int{1, 2} {
				body := review(t, podJSON(t, hr.pod(scale)))
				code, size := s.serve(hr.path, body)
				sizes[i] = size
				if len(body) > MaxRequestBytes {
					if code != http.StatusRequestEntityTooLarge {
						t.Errorf("scale %d: %d-byte review answered %d, want 413", scale, len(body), code)
					}
					continue
				}
				if code != http.StatusOK {
					t.Fatalf("scale %d: status %d", scale, code)
				}
				_, resp := s.answer(hr.path, body)
				hr.check(t, resp)
				if size > maxResponse {
					t.Errorf("scale %d: a %d-byte review got a %d-byte answer, over %d", scale, len(body), size, maxResponse)
				}
				handler := allocated(3, func() { s.serve(hr.path, body) })
				floor := allocated(3, func() { decodeFloor(t, body) })
				t.Logf("scale %d: review %d bytes, answer %d bytes, allocated %.0f bytes (floor %.0f, %.2f ×)",
					scale, len(body), size, handler, floor, handler/floor)
				if handler > 2.5*floor+(1<<20) {
					t.Errorf("scale %d: the handler allocates %.0f bytes, %.1f × decoding the review once (%.0f)", scale, handler, handler/floor, floor)
				}
			}
			if sizes[1] > sizes[0]+512 {
				t.Errorf("the answer grew with the input: %d bytes at scale 1, %d at scale 2", sizes[0], sizes[1])
			}
		})
	}
}

// TestHostileReviewsLeaveNoState sends 1,000 hostile reviews to one handler:
// the metric series stay the ones the first round created, and the live heap
// ends within a few MiB of where it started.
func TestHostileReviewsLeaveNoState(t *testing.T) {
	const requests = 1000
	r := hostileRounds(t, requests)
	t.Logf("live heap %d → %d bytes after %d hostile requests (%+d); %d series", r.heapBefore, r.heapAfter, requests, r.grown(), r.seriesAfter)
	if r.grown() > 4<<20 {
		t.Errorf("the live heap grew by %d bytes over %d hostile requests", r.grown(), requests)
	}
	if r.seriesAfter != r.seriesBefore {
		t.Errorf("metric series %d after %d hostile requests, %d after the first round", r.seriesAfter, requests, r.seriesBefore)
	}
}

type roundsResult struct {
	heapBefore, heapAfter     uint64
	seriesBefore, seriesAfter int
}

func (r roundsResult) grown() int64 { return int64(r.heapAfter) - int64(r.heapBefore) }

// hostileRounds sends one round of every hostile review that is read (the
// 45,000 keys are refused whole, and 1,000 of them would only time the JSON
// decoder), then n more with every made-up key renamed per request, as an
// attacker would send them, each checked to get its answer.
func hostileRounds(tb testing.TB, n int) roundsResult {
	s := newHostileServer(tb)
	var reviews []hostileReview
	var bodies [][]byte
	for _, hr := range hostileReviews {
		if hr.name == "45000-keys" {
			continue
		}
		reviews = append(reviews, hr)
		bodies = append(bodies, review(tb, podJSON(tb, hr.pod(1))))
	}
	for i := range bodies {
		s.serve(reviews[i].path, bodies[i])
	}
	r := roundsResult{seriesBefore: s.series(tb), heapBefore: liveHeap()}
	for i := range n {
		j := i % len(bodies)
		code, resp := s.answer(reviews[j].path, forRound(bodies[j], i+1))
		if code != http.StatusOK {
			tb.Fatalf("request %d: status %d", i, code)
		}
		reviews[j].check(tb, resp)
	}
	r.heapAfter, r.seriesAfter = liveHeap(), s.series(tb)
	return r
}

// BenchmarkHostileHeap reports the live heap's growth and the metric series
// over 1,000 hostile requests (one round per iteration).
func BenchmarkHostileHeap(b *testing.B) {
	var r roundsResult
	for b.Loop() {
		r = hostileRounds(b, 1000)
	}
	b.ReportMetric(float64(r.grown()), "heap-growth-bytes")
	b.ReportMetric(float64(r.heapAfter), "heap-after-bytes")
	b.ReportMetric(float64(r.seriesAfter-r.seriesBefore), "new-series")
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkHostile times each hostile review, and twice its size, through
// the real HTTP handler, beside the normal peer pod; docs/BENCHMARKS.md
// reports ns/op, allocations and the answer's bytes.
func BenchmarkHostile(b *testing.B) {
	s := newHostileServer(b)
	run := func(b *testing.B, path string, body []byte) {
		var size int
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_, size = s.serve(path, body)
		}
		b.ReportMetric(float64(size), "response-bytes")
	}
	b.Run("normal-pod", func(b *testing.B) { run(b, Path, review(b, peerPod(b))) })
	for _, hr := range hostileReviews {
		for _, scale := range []int{1, 2} {
			body := review(b, podJSON(b, hr.pod(scale)))
			b.Run(fmt.Sprintf("%s/scale=%d", hr.name, scale), func(b *testing.B) { run(b, hr.path, body) })
		}
	}
}

func TestCauseLabelsComeFromAFixedSet(t *testing.T) {
	for path, want := range map[string]string{
		"metadata.annotations[mtls.demo/duration]":                            "metadata.annotations[mtls.demo/duration]",
		"metadata.annotations[mtls.demo/" + strings.Repeat("x", 5000) + "]":   "metadata.annotations[*]",
		"metadata.annotations[mtls.demo/a].b[c]":                              "metadata.annotations[*]",
		"spec.containers[3].securityContext.runAsGroup":                       "spec.containers[*].securityContext.runAsGroup",
		"spec.volumes[0].csi.volumeAttributes[csi.cert-manager.io/duration]":  "spec.volumes[*].csi.volumeAttributes[csi.cert-manager.io/duration]",
		"spec.volumes[0].csi.volumeAttributes[csi.cert-manager.io/is-ca]":     "spec.volumes[*].csi.volumeAttributes[*]",
		"spec.volumes[0].csi.volumeAttributes[csi.cert-manager.io/x]]]]]":     "spec.volumes[*].csi.volumeAttributes[*]",
		"metadata.annotations":                                                "metadata.annotations",
		"spec.containers[":                                                    "other",
		"spec.weird-field":                                                    "other",
		"spec." + strings.Repeat("a", 200):                                    "other",
		"spec.volumes[0].csi.volumeAttributes[csi.cert-manager.io/dns-names]": "spec.volumes[*].csi.volumeAttributes[csi.cert-manager.io/dns-names]",
	} {
		if got := causeLabel(path); got != want {
			t.Errorf("causeLabel(%.80q) = %q, want %q", path, got, want)
		}
	}
}

func TestWarningsAreBounded(t *testing.T) {
	ws := make([]string, 100)
	for i := range ws {
		ws[i] = strings.Repeat("w", 10_000)
	}
	got := boundWarnings(ws)
	if len(got) != MaxWarnings+1 || got[MaxWarnings] != "84 more warnings not shown" {
		t.Fatalf("%d warnings, last %q", len(got), got[len(got)-1])
	}
	for _, w := range got[:MaxWarnings] {
		if w != annotations.Truncate(ws[0], maxWarningBytes) || !strings.HasSuffix(w, "...(10000 bytes)") || len(w) > maxWarningBytes+len("...(10000 bytes)") {
			t.Fatalf("a warning of %d bytes: %.40q...", len(w), w)
		}
	}
	if got := boundWarnings([]string{"a", "b"}); len(got) != 2 || got[1] != "b" {
		t.Errorf("few short warnings changed: %q", got)
	}
	if got := annotations.Truncate("ééé", 5); got != "éé...(6 bytes)" {
		t.Errorf("Truncate splits a UTF-8 sequence or misses the length: %q", got)
	}
}

// FuzzHostileBounds builds reviews from a fuzzed shape (how many mtls.demo/
// keys, how long their names and values, an attribute-heavy forged volume
// or not, and a fuzzed unit repeated into them) and sends them through the
// real HTTP handlers. Whatever the shape, the answer stays under 64 KiB and
// carries at most MaxWarnings+1 warnings, and the bytes allocated stay
// within a fixed multiple of the review's own bytes: no input byte may buy
// more than a few bytes of work.
func FuzzHostileBounds(f *testing.F) {
	f.Add(uint16(20), uint16(1000), uint16(5000), false, "k")
	f.Add(uint16(3000), uint16(30), uint16(10), false, "is")
	f.Add(uint16(500), uint16(200), uint16(200), true, "a")
	f.Add(uint16(1), uint16(32), uint16(4097), false, "issuer")
	f.Add(uint16(9), uint16(3), uint16(0), true, "\u00e9")
	s := newHostileServer(f)
	f.Fuzz(func(t *testing.T, n, keyLen, valueLen uint16, forged bool, unit string) {
		if unit == "" {
			unit = "k"
		}
		keys := int(n) % 4000
		p := hostileBase()
		attrs := map[string]string{}
		for i := range keys {
			name := fmt.Sprintf("%d-%s", i, repeatTo(unit, int(keyLen)%2048))
			value := repeatTo(unit, int(valueLen)%8192)
			if forged {
				attrs["csi.cert-manager.io/"+name] = value
			} else {
				p.Annotations[annotations.Prefix+name] = value
			}
		}
		path := Path
		if forged {
			path = VerifyPath
			attrs[mutate.AttrIssuerName] = "corp-ca"
			p.Spec.Volumes = []corev1.Volume{{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: mutate.Driver, VolumeAttributes: attrs}}}}
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Skip("not a pod JSON can carry") // invalid UTF-8 is replaced, never refused
		}
		body := review(t, raw)
		var (
			code int
			resp []byte
		)
		spent := allocated(1, func() { code, resp = s.answer(path, body) })
		// The answer's bound is fixed: at most MaxWarnings warnings of
		// maxWarningBytes, and causes quoting at most MaxQuotedBytes of each
		// value, every byte of which JSON may escape into six ("&" is
		// \u0026).
		if len(resp) > 64<<10 {
			t.Fatalf("a %d-byte review got a %d-byte answer", len(body), len(resp))
		}
		if code == http.StatusOK {
			var ar admissionv1.AdmissionReview
			if err := json.Unmarshal(resp, &ar); err != nil || ar.Response == nil {
				t.Fatalf("answer is no AdmissionReview: %v", err)
			}
			if len(ar.Response.Warnings) > MaxWarnings+1 {
				t.Fatalf("%d warnings", len(ar.Response.Warnings))
			}
		}
		// Decoding JSON into a typed pod costs a few bytes per input byte
		// (maps, strings, the review's own copy); 12 per byte and 2 MiB of
		// fixed cost leave room for that and nothing that grows faster.
		if limit := 12*float64(len(body)) + 2<<20; spent > limit {
			t.Fatalf("a %d-byte review (%d keys of %d+%d bytes) allocated %.0f bytes, over %.0f", len(body), keys, keyLen, valueLen, spent, limit)
		}
	})
}

func repeatTo(unit string, n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat(unit, n/len(unit)+1)[:n]
}
