package annotations

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Bounds on the unknown-key warnings. The keys come from the request, and
// the API server only checks annotation keys after mutating admission, so
// nothing about them may be trusted: a pod may carry tens of thousands of
// mtls.demo/ keys, each megabytes long.
const (
	// MaxUnknownKeyWarnings is how many unknown mtls.demo/ keys get a
	// warning of their own; the rest are counted in one more warning.
	MaxUnknownKeyWarnings = 8
	// maxSuggestKeyLen is the longest key name (after the prefix) that gets
	// a typo suggestion: the longest known name plus a typo's slack. The
	// edit distance is quadratic, so longer keys are never measured.
	maxSuggestKeyLen = 32
	// MaxQuotedBytes is the most of any key or value that a warning, an
	// error's text or a log line quotes; longer ones end in "...".
	MaxQuotedBytes = 80
)

// Quote returns s cut to MaxQuotedBytes, so that a message about a value
// of any length stays short.
func Quote(s string) string { return Truncate(s, MaxQuotedBytes) }

// Truncate returns s when it has at most n bytes, and otherwise its first
// bytes, up to n, followed by "...(<len> bytes)". It never splits a UTF-8
// sequence. Messages, logs and warnings that carry request content use it.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}

// unknownKeys returns one warning for each of the first (in sorted order)
// MaxUnknownKeyWarnings mtls.demo/ keys the webhook does not understand,
// naming the closest known key when one is near enough to be a typo, and
// one warning that counts the others. Its cost is linear in the number of
// keys and bounded per key, whatever the request holds.
func unknownKeys(ann map[string]string) []string {
	var (
		first []string // the smallest unknown keys, sorted
		count int
	)
	for key := range ann {
		if !strings.HasPrefix(key, Prefix) || isKnown(key) {
			continue
		}
		count++
		if len(first) == MaxUnknownKeyWarnings && key >= first[len(first)-1] {
			continue
		}
		i, _ := slices.BinarySearch(first, key)
		first = slices.Insert(first, i, key)
		if len(first) > MaxUnknownKeyWarnings {
			first = first[:MaxUnknownKeyWarnings]
		}
	}
	if count == 0 {
		return nil
	}
	warnings := make([]string, 0, len(first)+1)
	for _, key := range first {
		if best := nearest(key); best != "" {
			warnings = append(warnings, fmt.Sprintf("annotation %s is not known and is ignored; did you mean %s?", Quote(key), best))
		} else {
			warnings = append(warnings, fmt.Sprintf("annotation %s is not known and is ignored; known keys: %s", Quote(key), strings.Join(known[:], ", ")))
		}
	}
	if count > len(first) {
		warnings = append(warnings, fmt.Sprintf("%d more annotations under %s are not known and are ignored (not listed)", count-len(first), Prefix))
	}
	return warnings
}

func isKnown(key string) bool { return slices.Contains(known[:], key) }

// nearest returns the known key with the smallest edit distance from key, if
// that distance is small enough to be a slip of the keyboard. Keys longer
// than any typo of a known one get no suggestion.
func nearest(key string) string {
	suffix := strings.TrimPrefix(key, Prefix)
	if len(suffix) > maxSuggestKeyLen {
		return ""
	}
	best, bestDist := "", -1
	for _, k := range known {
		if k == Status {
			continue
		}
		d := levenshtein(suffix, strings.TrimPrefix(k, Prefix))
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	limit := max(2, len(suffix)/3)
	if bestDist > limit {
		return ""
	}
	return best
}

// levenshtein is the classic edit distance over bytes. nearest only calls
// it on keys of at most maxSuggestKeyLen bytes against the known names, so
// the quadratic cost is a few hundred steps.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
