// Package logtail cuts logs and command output to their last lines, for
// error messages: the cause is usually at the end.
package logtail

import (
	"os"
	"strings"
)

// Lines returns the last n lines of s (all of them when there are fewer),
// without a trailing newline.
func Lines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// File returns the last n lines of the file at path that drop does not
// reject (drop may be nil), or the read error's text.
func File(path string, n int, drop func(line string) bool) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if drop == nil {
		return Lines(string(b), n)
	}
	var kept []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimRight(l, "\n"); !drop(l) {
			kept = append(kept, l)
		}
	}
	return Lines(strings.Join(kept, "\n"), n)
}
