package launcher

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

type cfg struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

var spec = Spec[cfg]{
	Name: "test",
	New:  func() (*cfg, error) { return &cfg{Name: "default", Count: 1}, nil },
	Bind: func(fs *pflag.FlagSet, c *cfg) {
		fs.StringVar(&c.Name, "name", c.Name, "")
		fs.IntVar(&c.Count, "count", c.Count, "")
	},
	Load: func(path string, c *cfg) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, c)
	},
	Validate: func(c *cfg) error {
		if c.Count < 0 {
			return errors.New("count must not be negative")
		}
		return nil
	},
}

func TestParse(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"name":"from-file","count":7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		want    cfg
		mode    Mode
		wantErr string
	}{
		{args: nil, want: cfg{"default", 1}},
		{args: []string{"--name=x", "--count", "3"}, want: cfg{"x", 3}},
		// The file fills what the flags leave; a flag wins wherever it
		// stands on the command line.
		{args: []string{"--config=" + file}, want: cfg{"from-file", 7}},
		{args: []string{"--name=flag", "--config=" + file}, want: cfg{"flag", 7}},
		{args: []string{"--config=" + file, "--count=2"}, want: cfg{"from-file", 2}},
		{args: []string{"--count=2", "--validate-flags"}, want: cfg{"default", 2}, mode: ValidateFlags},
		{args: []string{"--help"}, mode: Help},
		{args: []string{"--nope"}, wantErr: "unknown flag: --nope"},
		{args: []string{"stray"}, wantErr: `unexpected arguments ["stray"]`},
		{args: []string{"--count=-1"}, wantErr: "invalid configuration: count must not be negative"},
		{args: []string{"--config=" + file + ".missing"}, wantErr: "config file"},
	} {
		got, mode, err := spec.Parse(tc.args, io.Discard)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || mode != tc.mode {
			t.Errorf("%q: mode %v err %v, want mode %v", tc.args, mode, err, tc.mode)
			continue
		}
		if mode != Help && *got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}
