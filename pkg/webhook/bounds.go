package webhook

import (
	"strconv"
	"strings"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// What one admission answer or log line may carry of the request's content.
// Anyone who reaches the webhook's port can send a review, and through the
// API server anyone who may create a pod can: keys and values are checked by
// the API server only after mutating admission. So nothing the webhook keeps
// (metric series) or writes (warnings, logs) grows with the request.
const (
	// MaxWarnings is how many warnings one answer carries; the rest are
	// counted in one more.
	MaxWarnings = 16
	// maxWarningBytes cuts each warning (annotations.Truncate adds the
	// length after the cut).
	maxWarningBytes = 512
	// maxLoggedCauses cuts the causes of a refusal in the log line.
	maxLoggedCauses = 2048
)

// boundWarnings returns at most MaxWarnings warnings of at most
// maxWarningBytes each, and a last one that says how many were dropped.
func boundWarnings(ws []string) []string {
	if len(ws) == 0 {
		return ws
	}
	out := make([]string, 0, min(len(ws), MaxWarnings+1))
	for i, w := range ws {
		if i == MaxWarnings {
			out = append(out, strconv.Itoa(len(ws)-MaxWarnings)+" more warnings not shown")
			break
		}
		out = append(out, annotations.Truncate(w, maxWarningBytes))
	}
	return out
}

// knownSubscripts are the map keys a denial's field path may keep in the
// metric label: the webhook's annotations and the volume attributes it
// writes. Any other subscript (an index, an unknown key, an attribute a
// forged volume carries) becomes [*].
var knownSubscripts = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range annotations.Keys() {
		m[k] = true
	}
	for _, k := range mutate.AttributeKeys() {
		m[k] = true
	}
	return m
}()

// maxCauseLabel bounds a label value even if a path shape not foreseen
// here comes along; such a label is "other".
const maxCauseLabel = 160

// causeLabel is the metric label of one denial cause: its field path with
// list indexes folded into [*], map keys kept when they are the webhook's
// own annotations or attributes, and the path cut after any other map key
// (which may hold anything, brackets included). Paths are built by this
// webhook from fixed field names, so the labels form a small fixed set,
// whatever the request holds; anything unforeseen is "other".
func causeLabel(path string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(path, '[')
		if i < 0 {
			if !fieldNames(path) {
				return "other"
			}
			b.WriteString(path)
			break
		}
		if !fieldNames(path[:i]) {
			return "other"
		}
		b.WriteString(path[:i])
		j := strings.IndexByte(path[i:], ']')
		if j < 0 {
			return "other"
		}
		sub, rest := path[i+1:i+j], path[i+j+1:]
		switch {
		case isIndex(sub):
			b.WriteString("[*]")
		case knownSubscripts[sub] && (rest == "" || rest[0] == '.' || rest[0] == '['):
			b.WriteString("[" + sub + "]")
		default:
			b.WriteString("[*]")
			return b.String()
		}
		path = rest
	}
	if b.Len() > maxCauseLabel {
		return "other"
	}
	return b.String()
}

// fieldNames reports whether s is made of field names and dots only.
func fieldNames(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && c != '.' {
			return false
		}
	}
	return len(s) <= maxCauseLabel
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
