package annotations

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// hostileKeys is n unique mtls.demo/ keys of keyLen bytes after the prefix,
// each with a value of valueLen bytes: what the security review sent.
func hostileKeys(n, keyLen, valueLen int) map[string]string {
	ann := map[string]string{Enable: "true"}
	value := strings.Repeat("v", valueLen)
	for i := range n {
		k := fmt.Sprintf("%0*d", keyLen, i)
		ann[Prefix+k] = value
	}
	return ann
}

func TestUnknownKeysAreBoundedInNumber(t *testing.T) {
	for _, n := range []int{MaxUnknownKeyWarnings - 1, MaxUnknownKeyWarnings, 3000} {
		ann := hostileKeys(n, 10, 1)
		_, warnings, errs := Parse(ann, testDefaults())
		if len(errs) > 0 {
			t.Fatalf("%d keys: unknown keys are warnings, not errors: %v", n, errs)
		}
		want := min(n, MaxUnknownKeyWarnings)
		if n > MaxUnknownKeyWarnings {
			want++
		}
		if len(warnings) != want {
			t.Fatalf("%d unknown keys gave %d warnings, want %d: %q", n, len(warnings), want, warnings)
		}
		// The first keys in sorted order are named, whatever order the map
		// gives: the answer is the same for the same pod.
		if !strings.Contains(warnings[0], Prefix+fmt.Sprintf("%010d", 0)) {
			t.Errorf("first warning %q is not about the smallest key", warnings[0])
		}
		if n > MaxUnknownKeyWarnings {
			last := warnings[len(warnings)-1]
			if wantText := fmt.Sprintf("%d more annotations under mtls.demo/ are not known", n-MaxUnknownKeyWarnings); !strings.Contains(last, wantText) {
				t.Errorf("last warning %q does not count the dropped keys (%q)", last, wantText)
			}
		}
	}
}

func TestUnknownKeyWarningsQuoteABoundedPrefix(t *testing.T) {
	long := Prefix + strings.Repeat("k", 100_000)
	_, warnings, _ := Parse(map[string]string{Enable: "true", long: "x"}, testDefaults())
	if len(warnings) != 1 {
		t.Fatalf("warnings %q", warnings)
	}
	if len(warnings[0]) > 2*MaxQuotedBytes+len(strings.Join(known[:], ", "))+100 {
		t.Errorf("a warning about a 100 kB key is %d bytes long", len(warnings[0]))
	}
	if !strings.Contains(warnings[0], "(100010 bytes)") {
		t.Errorf("warning %q does not say how long the key was", warnings[0][:200])
	}
}

func TestTypoSuggestionsOnlyForKeysATypoAway(t *testing.T) {
	for key, want := range map[string]string{
		"mtls.demo/isuer":    "did you mean mtls.demo/issuer?",
		"mtls.demo/dnsnames": "did you mean mtls.demo/dns-names?",
		// Longer than any typo of a known key: no edit distance is measured.
		"mtls.demo/" + strings.Repeat("issuer", 10): "known keys:",
	} {
		_, warnings, _ := Parse(map[string]string{Enable: "true", key: "x"}, testDefaults())
		if len(warnings) != 1 || !strings.Contains(warnings[0], want) {
			t.Errorf("%s: warnings %q, want one containing %q", Quote(key), warnings, want)
		}
	}
}

func TestAnnotationsOverTheAPIServersTotalAreRefusedUnread(t *testing.T) {
	// 45,000 keys and about 3 MB, as in the review: one refusal, no
	// warning, nothing that grows with the keys.
	ann := hostileKeys(45_000, 40, 24)
	ann[DNSNames] = strings.Repeat("a,", 10_000)
	cfg, warnings, errs := Parse(ann, testDefaults())
	if len(errs) != 1 || errs[0].Type != field.ErrorTypeInvalid || errs[0].Field != "metadata.annotations" {
		t.Fatalf("want one Invalid on metadata.annotations, got %d errors: %.300v", len(errs), errs)
	}
	if msg := errs[0].Error(); !strings.Contains(msg, "45002 annotations") || !strings.Contains(msg, "262144") || len(msg) > 300 {
		t.Errorf("the refusal should name the count, the size and the limit in a short message: %q", msg)
	}
	if len(warnings) != 0 || cfg.Enabled {
		t.Errorf("nothing is read past the total: warnings %d, config %+v", len(warnings), cfg)
	}
	// Just under the total, the same keys are read, and still bounded.
	small := hostileKeys(2000, 100, 20)
	_, warnings, errs = Parse(small, testDefaults())
	if len(errs) != 0 || len(warnings) != MaxUnknownKeyWarnings+1 {
		t.Errorf("2000 keys under the total: %d errors, %d warnings", len(errs), len(warnings))
	}
}

// TestTotalSizeIsTheAPIServersRule: the limit and the sum are
// apimachinery's, right at the boundary.
func TestTotalSizeIsTheAPIServersRule(t *testing.T) {
	if MaxTotalAnnotationBytes != apivalidation.TotalAnnotationSizeLimitB {
		t.Fatalf("MaxTotalAnnotationBytes = %d, the API server's is %d", MaxTotalAnnotationBytes, apivalidation.TotalAnnotationSizeLimitB)
	}
	for _, extra := range []int{-1, 0, 1} {
		ann := map[string]string{Enable: "true"}
		ann["x"] = strings.Repeat("v", MaxTotalAnnotationBytes-len(Enable)-len("true")-len("x")+extra)
		ours, theirs := checkTotalSize(ann) != nil, apivalidation.ValidateAnnotationsSize(ann) != nil
		if ours != theirs {
			t.Errorf("%+d byte(s) around the limit: refused here %t, by the API server %t", extra, ours, theirs)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("short"); got != "short" {
		t.Errorf("Quote(short) = %q", got)
	}
	// A cut never splits a UTF-8 sequence: 79 ASCII bytes then "é".
	s := strings.Repeat("a", MaxQuotedBytes-1) + "éé"
	got := Quote(s)
	if got != strings.Repeat("a", MaxQuotedBytes-1)+"...(83 bytes)" {
		t.Errorf("Quote = %q", got)
	}
}

func TestRenewalsAreBounded(t *testing.T) {
	p := func(k string) string { return PathFor(k).String() }
	tests := map[string]struct {
		ann       map[string]string
		wantRenew time.Duration
		wantField string
		wantText  []string
	}{
		"59.999s of a 1m certificate renews every millisecond": {
			ann:       base(Duration, "1m", RenewBefore, "59.999s"),
			wantField: p(RenewBefore),
			wantText:  []string{"leaves 1ms between renewals", "at least 30s", "--min-renew-interval"},
		},
		"31s of a 1m certificate": {
			ann:       base(Duration, "1m", RenewBefore, "31s"),
			wantField: p(RenewBefore), wantText: []string{"leaves 29s between renewals"},
		},
		"exactly the floor is allowed": {
			ann: base(Duration, "1m", RenewBefore, "30s"), wantRenew: 30 * time.Second,
		},
		"a short duration without renew-before renews at two thirds": {
			ann: base(Duration, "1m"), wantRenew: 20 * time.Second,
		},
		"renew-before longer than the duration is still its own error": {
			ann:       base(Duration, "1h", RenewBefore, "2h"),
			wantField: p(RenewBefore), wantText: []string{"must be shorter than the certificate duration"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, _, errs := Parse(tc.ann, testDefaults())
			if tc.wantField == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				if cfg.RenewBefore != tc.wantRenew {
					t.Fatalf("renew-before %s, want %s", cfg.RenewBefore, tc.wantRenew)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != tc.wantField {
				t.Fatalf("want one error on %s, got %v", tc.wantField, errs)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(errs[0].Error(), w) {
					t.Errorf("%q lacks %q", errs[0].Error(), w)
				}
			}
		})
	}
	// A floor the admin raised is the one enforced, and named.
	d := testDefaults()
	d.Limits.MinRenewInterval = 10 * time.Minute
	d.Limits.MinDuration = time.Hour
	_, _, errs := Parse(base(Duration, "1h", RenewBefore, "55m"), d)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "at least 10m0s between renewals") {
		t.Errorf("raised floor: %v", errs)
	}
}

func TestMinRenewIntervalFlagIsChecked(t *testing.T) {
	for _, tc := range []struct {
		interval, minDuration time.Duration
		want                  string
	}{
		{500 * time.Millisecond, time.Minute, "must be at least 1s"},
		{41 * time.Second, time.Minute, "at most two thirds of --min-duration=1m0s"},
	} {
		l := NewLimits()
		l.MinRenewInterval, l.MinDuration = tc.interval, tc.minDuration
		errs := l.Validate()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("--min-renew-interval=%s: %v, want %q", tc.interval, errs, tc.want)
		}
	}
	if errs := NewLimits().Validate(); len(errs) != 0 {
		t.Errorf("defaults refused: %v", errs)
	}
}
