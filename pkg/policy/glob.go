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
	if err := checkUnambiguous(s, sep); err != nil {
		return Glob{}, err
	}
	return Glob{raw: s, sep: sep}, nil
}

// globToken is one part of a glob: a template variable, a wildcard, or a
// literal byte.
type globToken struct {
	name    string // "${POD_NAMESPACE}", "*", "?" or the literal byte
	varLen  bool   // matches a run of any length: a variable or *
	literal bool
}

// alphabet reports whether c may occur in what tok stands for: a namespace
// is a DNS label, a service account name a DNS subdomain, and * anything
// but the separator.
func (tok globToken) alphabet(c, sep byte) bool {
	label := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	switch tok.name {
	case "${POD_NAMESPACE}":
		return label
	case "${SERVICE_ACCOUNT_NAME}":
		return label || c == '.'
	default: // *
		return c != sep
	}
}

func tokenize(s string) []globToken {
	var toks []globToken
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "${POD_NAMESPACE}"), strings.HasPrefix(s[i:], "${SERVICE_ACCOUNT_NAME}"):
			j := i + strings.IndexByte(s[i:], '}') + 1
			toks = append(toks, globToken{name: s[i:j], varLen: true})
			i = j
		case s[i] == '*':
			toks = append(toks, globToken{name: "*", varLen: true})
			i++
		case s[i] == '?':
			toks = append(toks, globToken{name: "?"})
			i++
		default:
			toks = append(toks, globToken{name: s[i : i+1], literal: true})
			i++
		}
	}
	return toks
}

// checkUnambiguous refuses a glob in which a template variable meets
// another variable or a * with nothing between them that tells where one
// ends: in ${POD_NAMESPACE}-${SERVICE_ACCOUNT_NAME} the pod of namespace a
// with service account b-c and the pod of namespace a-b with service
// account c both match a-b-c, so the glob would give one namespace's name
// to another's pods. Between two such parts there must be a literal byte
// that one of them can never contain (the separator, or a character
// outside names such as ':' or '_').
func checkUnambiguous(s string, sep byte) error {
	toks := tokenize(s)
	prev := -1 // index of the last variable-length token
	for i, tok := range toks {
		if !tok.varLen {
			continue
		}
		if prev >= 0 && (tok.name != "*" || toks[prev].name != "*") {
			a, b := toks[prev], tok
			delimited := false
			for _, mid := range toks[prev+1 : i] {
				if mid.literal && (!a.alphabet(mid.name[0], sep) || !b.alphabet(mid.name[0], sep)) {
					delimited = true
					break
				}
			}
			if !delimited {
				return fmt.Errorf("glob %q is ambiguous: nothing between %s and %s marks where one ends, so pods of different namespaces or service accounts can match the same name; put a character neither can contain between them (%q, or one such as ':')", s, a.name, b.name, string(sep))
			}
		}
		prev = i
	}
	return nil
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
