package app

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

// ParseAllowedClients must never panic, and whatever it accepts must be a
// clean, duplicate-free list that survives a round trip.
func FuzzParseAllowedClients(f *testing.F) {
	f.Add("spiffe://cluster.local/ns/demo/sa/frontend")
	f.Add(" spiffe://cluster.local/ns/demo/sa/frontend , legacy-client,,")
	f.Add("a,a,b")
	f.Add("spiffe://")
	f.Add("bad entry")
	f.Fuzz(func(t *testing.T, in string) {
		ids, err := ParseAllowedClients(in)
		if err != nil {
			if ids != nil {
				t.Fatalf("error %v with a non-nil result %q", err, ids)
			}
			if !strings.Contains(err.Error(), EnvAllowedClients) {
				t.Fatalf("error %q does not name %s", err, EnvAllowedClients)
			}
			return
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if id == "" || strings.Contains(id, ",") || strings.IndexFunc(id, unicode.IsSpace) >= 0 || seen[id] {
				t.Fatalf("accepted unclean or duplicate entry %q from %q", id, in)
			}
			seen[id] = true
		}
		again, err := ParseAllowedClients(strings.Join(ids, ","))
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("round trip of %q: %q, %v", ids, again, err)
		}
	})
}

// readRequestID parses untrusted request bodies: no panic, and an accepted
// ID is always 1-128 bytes.
func FuzzReadRequestID(f *testing.F) {
	f.Add(`{"request_id": "1"}`)
	f.Add(`{"request_id": 12}`)
	f.Add(`{"request_id": null}`)
	f.Add(`{"request_id": ""}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, body string) {
		id, err := readRequestID(strings.NewReader(body))
		if err == nil && (id == "" || len(id) > 128) {
			t.Fatalf("accepted id %q from %q", id, body)
		}
	})
}

// Table checks for the cases the fuzzers cannot judge: what is rejected.
func TestParseAllowedClients(t *testing.T) {
	good := map[string][]string{
		"":    nil,
		" , ": nil,
		"spiffe://cluster.local/ns/demo/sa/frontend, cn-name,cn-name": {"spiffe://cluster.local/ns/demo/sa/frontend", "cn-name"},
	}
	for in, want := range good {
		got, err := ParseAllowedClients(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"two words", "spiffe://", "spiffe:///no-host", "tab\there", strings.Repeat("x", 2000)} {
		if _, err := ParseAllowedClients(in); err == nil || !strings.Contains(err.Error(), EnvAllowedClients) {
			t.Errorf("%q: accepted or error without variable name: %v", in, err)
		}
	}
}
