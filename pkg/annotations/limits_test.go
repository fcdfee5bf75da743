package annotations

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// FuzzParseLengthBombs builds values by repeating a fuzzed unit up to a
// fuzzed count, well past every limit, and parses them twice: with the
// default limits, where anything over --max-annotation-bytes must be refused
// unread, and with limits raised far enough that the whole value is read, so
// that the list parsing itself stays linear (the quadratic version took
// seconds on 256 KB). Either way the answer stays small and an accepted
// config respects the limits.
func FuzzParseLengthBombs(f *testing.F) {
	f.Add("a,", uint32(43000), uint8(0))
	f.Add("x.shop.svc,", uint32(30000), uint8(1))
	f.Add("urn:a:", uint32(50000), uint8(2))
	f.Add("Bad_,", uint32(60000), uint8(0))
	f.Add(",", uint32(200000), uint8(3))
	f.Add("${POD_NAME}", uint32(20000), uint8(4))
	f.Add("\x00\n", uint32(100000), uint8(4))
	f.Fuzz(func(t *testing.T, unit string, count uint32, which uint8) {
		if unit == "" {
			return
		}
		n := int(count) % (1<<18/len(unit) + 1)
		value := strings.Repeat(unit, n) + unit
		key := [...]string{DNSNames, DNSNames, URISANs, Containers, CommonName}[int(which)%5]
		if key == URISANs {
			value = strings.ReplaceAll(value, ",", ",urn:x")
		}
		ann := map[string]string{Enable: "true", key: value}

		check := func(d Defaults, bound time.Duration) {
			lim := d.Limits.WithDefaults()
			start := time.Now()
			cfg, _, errs := Parse(ann, d)
			if took := time.Since(start); took > bound {
				t.Fatalf("Parse took %s on %d bytes of %q (limit %s)", took, len(value), key, bound)
			}
			if len(errs) > 3*(maxListErrors+1) {
				t.Fatalf("%d errors for one annotation: the answer grows with the input", len(errs))
			}
			if len(value) > MaxTotalAnnotationBytes {
				// Over the total bound nothing is read: one refusal of
				// all annotations, however many there are.
				if len(errs) != 1 || errs[0].Field != "metadata.annotations" || errs[0].Type != field.ErrorTypeInvalid {
					t.Fatalf("a %d-byte value over the %d-byte total was not refused: %v", len(value), MaxTotalAnnotationBytes, errs)
				}
				return
			}
			if len(value) > lim.MaxValueBytes {
				if len(errs) == 0 || errs[0].Field != PathFor(key).String() {
					t.Fatalf("a %d-byte value over the %d-byte limit was not refused: %v", len(value), lim.MaxValueBytes, errs)
				}
				return
			}
			if len(errs) > 0 {
				return
			}
			if len(cfg.DNSNames) > lim.MaxDNSNames || len(cfg.URISANs) > lim.MaxURISANs {
				t.Fatalf("accepted %d DNS names and %d URIs past the limits %d and %d", len(cfg.DNSNames), len(cfg.URISANs), lim.MaxDNSNames, lim.MaxURISANs)
			}
			seen := map[string]bool{}
			for _, s := range cfg.DNSNames {
				if seen[s] {
					t.Fatalf("duplicate DNS name %q kept", s)
				}
				seen[s] = true
			}
		}
		check(NewDefaults(), 5*time.Second)

		big := NewDefaults()
		big.Limits.MaxValueBytes = 1 << 20
		big.Limits.MaxDNSNames = 1 << 20
		big.Limits.MaxURISANs = 1 << 20
		check(big, 5*time.Second)
	})
}

// BenchmarkParse4KiB parses a dns-names annotation of exactly
// --max-annotation-bytes (4096 bytes: --max-dns-names names of 63
// characters): the most a pod can make Parse read with the default limits.
// The target is well under 1 ms.
func BenchmarkParse4KiB(b *testing.B) {
	value := strings.Join(sixtyFourNames(), ",")
	if len(value) != DefaultMaxValueBytes {
		b.Fatalf("value is %d bytes, want %d", len(value), DefaultMaxValueBytes)
	}
	ann := map[string]string{Enable: "true", Issuer: "ca", DNSNames: value, URISANs: "urn:a,urn:b", CommonName: "api"}
	d := NewDefaults()
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, _, errs := Parse(ann, d); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkParseBomb is the kind of bomb the quadratic parser choked on
// (43,000 names in 284 KB took 5-21 s, twice the names four times the CPU),
// read in full with the value limits lifted, and twice that: linear parsing
// keeps it in milliseconds, and twice the names cost about twice the time.
// Both fit under the API server's 256 KiB total that the parser now refuses
// first (18,000 names are 115 KB, 36,000 are 241 KB). With the default
// limits it is refused unread (BenchmarkParse256KBRefused).
func BenchmarkParseBomb(b *testing.B) {
	for _, n := range []int{18000, 36000} {
		b.Run("names="+strconv.Itoa(n), func(b *testing.B) {
			// Distinct names, as the bomb used: every entry must be kept.
			var sb strings.Builder
			for i := range n {
				if i > 0 {
					sb.WriteByte(',')
				}
				sb.WriteString("n")
				sb.WriteString(strconv.Itoa(i))
			}
			value := sb.String()
			ann := map[string]string{Enable: "true", Issuer: "ca", DNSNames: value}
			d := NewDefaults()
			d.Limits.MaxValueBytes, d.Limits.MaxDNSNames = 1<<21, 1<<20
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				if _, _, errs := Parse(ann, d); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}

// BenchmarkParse256KBRefused is the same bomb with the default limits.
func BenchmarkParse256KBRefused(b *testing.B) {
	ann := map[string]string{Enable: "true", Issuer: "ca", DNSNames: strings.Repeat("a,", 128*1024)}
	d := NewDefaults()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, errs := Parse(ann, d); len(errs) != 1 {
			b.Fatalf("want one refusal, got %v", errs)
		}
	}
}
