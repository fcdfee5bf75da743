// Command helmdocs rewrites the values tables of helm/README.md from the
// charts' values.yaml comments (`make helm-docs`); see internal/helmdocs.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mtls-demo/mtls-webhook/internal/helmdocs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "helmdocs:", err)
		os.Exit(1)
	}
}

func run() error {
	readmePath := filepath.Join("helm", "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return err
	}
	for _, chart := range []string{"mtls-webhook", "mtls-demo"} {
		values, err := os.ReadFile(filepath.Join("helm", chart, "values.yaml"))
		if err != nil {
			return err
		}
		table, err := helmdocs.Table(values)
		if err != nil {
			return fmt.Errorf("%s: %w", chart, err)
		}
		if readme, err = helmdocs.Replace(readme, chart, table); err != nil {
			return err
		}
	}
	return os.WriteFile(readmePath, readme, 0o644)
}
