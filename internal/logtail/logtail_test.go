package logtail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
		{"a\n\n\n", 1, "a"},
	} {
		if got := Lines(tc.in, tc.n); got != tc.want {
			t.Errorf("Lines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("start\nprobe failed\ncause\nprobe failed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	drop := func(l string) bool { return strings.Contains(l, "probe failed") }
	if got := File(p, 2, drop); got != "start\ncause" {
		t.Errorf("File with drop = %q", got)
	}
	if got := File(p, 1, nil); got != "probe failed" {
		t.Errorf("File = %q", got)
	}
	if got := File(filepath.Join(t.TempDir(), "absent"), 1, nil); !strings.Contains(got, "no such file") {
		t.Errorf("missing file: %q", got)
	}
}
