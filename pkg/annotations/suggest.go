package annotations

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// unknownKeys returns one warning for each mtls.demo/ key that the webhook
// does not understand, naming the closest known key when one is near enough
// to be a typo.
func unknownKeys(ann map[string]string) []string {
	var warnings []string
	for key := range ann {
		if !strings.HasPrefix(key, Prefix) || isKnown(key) {
			continue
		}
		if best := nearest(key); best != "" {
			warnings = append(warnings, fmt.Sprintf("annotation %s is not known and is ignored; did you mean %s?", key, best))
		} else {
			warnings = append(warnings, fmt.Sprintf("annotation %s is not known and is ignored; known keys: %s", key, strings.Join(known[:], ", ")))
		}
	}
	sort.Strings(warnings)
	return warnings
}

func isKnown(key string) bool { return slices.Contains(known[:], key) }

// nearest returns the known key with the smallest edit distance from key, if
// that distance is small enough to be a slip of the keyboard.
func nearest(key string) string {
	suffix := strings.TrimPrefix(key, Prefix)
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

// levenshtein is the classic edit distance over bytes; annotation keys are
// ASCII, short and few, so the quadratic cost does not matter.
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
