package netpol

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
)

// The names kube-router v2.1.0's network-policy controller gives what it
// creates (pkg/controllers/netpol and pkg/utils/ipset.go). Only objects with
// these names that did not exist before Start are ever removed.
var (
	ownedChains        = []string{"KUBE-ROUTER-INPUT", "KUBE-ROUTER-FORWARD", "KUBE-ROUTER-OUTPUT"}
	ownedChainPrefixes = []string{"KUBE-NWPLCY-", "KUBE-POD-FW-"}
	// KUBE-SRC-/KUBE-DST- hold policy members; TMP- sets live for the
	// length of an atomic swap and survive only a kill -9 mid-swap.
	ownedSetPrefixes = []string{"KUBE-SRC-", "KUBE-DST-", "TMP-", "inet6:KUBE-SRC-", "inet6:KUBE-DST-", "inet6:TMP-"}
)

// isRouterChain reports whether a filter-table chain name is one kube-router's
// firewall creates.
func isRouterChain(name string) bool {
	if slices.Contains(ownedChains, name) {
		return true
	}
	for _, p := range ownedChainPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// isRouterSet reports whether an ipset name is one kube-router's firewall
// creates.
func isRouterSet(name string) bool {
	for _, p := range ownedSetPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// builtinChains are the filter table's own chains.
var builtinChains = []string{"INPUT", "FORWARD", "OUTPUT"}

// table is one table of `iptables-save -t <table>` output.
type table struct {
	chains   []string          // in order of appearance
	policies map[string]string // built-in chain -> policy
	rules    []rule
}

type rule struct {
	chain string
	spec  string // everything after "-A <chain> "
}

// parseSave parses the output of `iptables-save -t filter` (one table). An
// empty input (the table does not exist) gives an empty table.
func parseSave(out string) (*table, error) {
	t := &table{policies: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, "*"), line == "COMMIT":
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("iptables-save: bad chain line %q", line)
			}
			t.chains = append(t.chains, f[0])
			if f[1] != "-" {
				t.policies[f[0]] = f[1]
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.SplitN(line, " ", 3)
			if len(f) < 2 {
				return nil, fmt.Errorf("iptables-save: bad rule line %q", line)
			}
			r := rule{chain: f[1]}
			if len(f) == 3 {
				r.spec = f[2]
			}
			t.rules = append(t.rules, r)
		default:
			return nil, fmt.Errorf("iptables-save: unexpected line %q", line)
		}
	}
	return t, sc.Err()
}

// target returns the chain a rule jumps or goes to ("" if none). The target
// is the word after the last -j/-g (iptables-save prints it last, after the
// matches; a comment is one quoted word, so it cannot be mistaken for it).
func (r rule) target() string {
	words := splitQuoted(r.spec)
	for i := len(words) - 2; i >= 0; i-- {
		if words[i] == "-j" || words[i] == "-g" || words[i] == "--jump" || words[i] == "--goto" {
			return words[i+1]
		}
	}
	return ""
}

// splitQuoted splits an iptables-save rule into words, keeping a "quoted
// comment" (with \" escapes) as one word.
func splitQuoted(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote, escaped, have := false, false, false
	for _, c := range s {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && inQuote:
			escaped = true
		case c == '"':
			inQuote = !inQuote
			have = true
		case c == ' ' && !inQuote:
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(c)
			have = true
		}
	}
	if have {
		words = append(words, cur.String())
	}
	return words
}

// cleanupScript returns the input for `iptables-restore --noflush` that
// removes, from the filter table now, every kube-router chain that was not
// in before, and every rule of the remaining chains that jumps to one of
// them, and nothing else. It returns "" when there is nothing to remove.
func cleanupScript(now *table, before []string) (script string, removed []string) {
	gone := map[string]bool{}
	for _, c := range now.chains {
		if isRouterChain(c) && !slices.Contains(before, c) {
			gone[c] = true
			removed = append(removed, c)
		}
	}
	if len(gone) == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, r := range now.rules {
		if !gone[r.chain] && gone[r.target()] {
			fmt.Fprintf(&b, "-D %s %s\n", r.chain, r.spec)
		}
	}
	for _, c := range removed {
		fmt.Fprintf(&b, "-F %s\n", c)
	}
	for _, c := range removed {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return b.String(), removed
}

// pristine reports whether a filter table holds nothing but its built-in
// chains with policy ACCEPT and no rule: what iptables-nft leaves behind
// once every rule of a table it created is gone.
func (t *table) pristine() bool {
	if len(t.rules) > 0 {
		return false
	}
	for _, c := range t.chains {
		if !slices.Contains(builtinChains, c) || t.policies[c] != "ACCEPT" {
			return false
		}
	}
	return true
}

// routerChains returns the kube-router chains in t.
func (t *table) routerChains() []string {
	var out []string
	for _, c := range t.chains {
		if isRouterChain(c) {
			out = append(out, c)
		}
	}
	return out
}

// parseSetNames parses `ipset list -n` output.
func parseSetNames(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	return names
}
