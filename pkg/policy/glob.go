package policy

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// Glob is an admin's pattern for names or URIs: `*` matches any run of
// characters and `?` any one character, neither across the separator (`.`
// in DNS names, `/` in URIs); `${POD_NAMESPACE}` and
// `${SERVICE_ACCOUNT_NAME}` stand for the pod's. Character classes and
// escapes are refused: with only `*` and `?`, a glob that matches a name
// whose unknown parts (the UID, the suffix of a generated name) are
// annotations.Unknown bytes matches every value the API server may pick.
type Glob struct {
	raw string
	sep byte
}

// String returns the glob as the admin wrote it.
func (g Glob) String() string { return g.raw }

// ParseGlob checks a glob; sep is the separator `*` and `?` do not cross.
func ParseGlob(s string, sep byte) (Glob, error) {
	switch {
	case s == "":
		return Glob{}, fmt.Errorf("empty glob")
	case strings.ContainsAny(s, `[]\`):
		return Glob{}, fmt.Errorf("glob %q: only * and ? are wildcards here; character classes and escapes are not supported", s)
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0:
		return Glob{}, fmt.Errorf("glob %q: must not contain spaces or control characters", s)
	}
	rest := strings.NewReplacer("${POD_NAMESPACE}", "", "${SERVICE_ACCOUNT_NAME}", "").Replace(s)
	if strings.Contains(rest, "$") {
		return Glob{}, fmt.Errorf("glob %q: the only templates are ${POD_NAMESPACE} and ${SERVICE_ACCOUNT_NAME}", s)
	}
	return Glob{raw: s, sep: sep}, nil
}

// Match reports whether value, expanded for id in annotations.Exact mode,
// matches the glob expanded for the same pod.
func (g Glob) Match(id annotations.Identity, value string) bool {
	pattern := strings.NewReplacer("${POD_NAMESPACE}", id.Namespace, "${SERVICE_ACCOUNT_NAME}", id.ServiceAccount).Replace(g.raw)
	ps := strings.Split(pattern, string(g.sep))
	vs := strings.Split(value, string(g.sep))
	if len(ps) != len(vs) {
		return false
	}
	for i := range ps {
		if !matchSegment(ps[i], vs[i]) {
			return false
		}
	}
	return true
}

// matchSegment is wildcard matching of one segment with * and ?, in time
// O(len(p)·len(s)) at worst: the classic greedy scan that backtracks only to
// the last star.
func matchSegment(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] != '*' && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
