// Package helmdocs writes the values tables of helm/README.md from the
// charts' values.yaml, where every documented key carries a comment that
// starts with "# --". The README cannot drift from the values: test/helm
// fails when the table there differs from Table's, and `make helm-docs`
// rewrites it.
package helmdocs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Table renders the Markdown table (header included, one row per key with
// a "# --" comment) of a values.yaml.
func Table(values []byte) (string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return "", err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return "", errors.New("values.yaml: want a mapping at the top")
	}
	var b strings.Builder
	b.WriteString("| Key | Default | Description |\n| --- | --- | --- |\n")
	if err := rows(&b, "", doc.Content[0]); err != nil {
		return "", err
	}
	return b.String(), nil
}

func rows(b *strings.Builder, prefix string, m *yaml.Node) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + k.Value
		if desc, ok := description(k.HeadComment); ok {
			def, err := inline(v)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			fmt.Fprintf(b, "| `%s` | `%s` | %s |\n", key, def, strings.ReplaceAll(desc, "|", `\|`))
		}
		if v.Kind == yaml.MappingNode {
			if err := rows(b, key+".", v); err != nil {
				return err
			}
		}
	}
	return nil
}

// description returns the text of the last "# --" comment block of a key's
// head comment: the block's lines joined with spaces, comment marks removed.
func description(head string) (string, bool) {
	lines := strings.Split(head, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "# --") {
			start = i
		}
	}
	if start < 0 {
		return "", false
	}
	var words []string
	for i, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if i == 0 {
			l = strings.TrimPrefix(l, "# --")
		} else if l == "" || !strings.HasPrefix(l, "#") {
			break
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "#"))
		if l != "" {
			words = append(words, l)
		}
	}
	return strings.Join(words, " "), true
}

// inline writes a value as one line of JSON with a space after ':' and ',',
// keeping the order of the keys in the YAML.
func inline(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			return "{}", nil
		}
		parts := make([]string, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := inline(n.Content[i+1])
			if err != nil {
				return "", err
			}
			parts = append(parts, strconv.Quote(n.Content[i].Value)+": "+v)
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := inline(c)
			if err != nil {
				return "", err
			}
			parts = append(parts, v)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return "", err
		}
		out, err := json.Marshal(v)
		return string(out), err
	case yaml.AliasNode:
		return inline(n.Alias)
	}
	return "", fmt.Errorf("unsupported YAML node kind %d", n.Kind)
}

// Replace puts table in place of the table that follows the heading line
// "### <chart> values" in readme.
func Replace(readme []byte, chart, table string) ([]byte, error) {
	heading := []byte("### " + chart + " values\n")
	h := bytes.Index(readme, heading)
	if h < 0 {
		return nil, fmt.Errorf("README: no heading %q", strings.TrimSpace(string(heading)))
	}
	start := h + len(heading)
	t := bytes.Index(readme[start:], []byte("| Key |"))
	if t < 0 {
		return nil, fmt.Errorf("README: no table after %q", strings.TrimSpace(string(heading)))
	}
	start += t
	end := start
	for end < len(readme) && readme[end] == '|' {
		nl := bytes.IndexByte(readme[end:], '\n')
		if nl < 0 {
			end = len(readme)
			break
		}
		end += nl + 1
	}
	out := append([]byte{}, readme[:start]...)
	out = append(out, table...)
	return append(out, readme[end:]...), nil
}
