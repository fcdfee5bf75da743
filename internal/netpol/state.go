package netpol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/procid"
)

// stateFileName is the record of what the host held before Start, in
// StateDir, written before kube-router starts and removed once the host is
// restored.
const stateFileName = "netpol-state.json"

// bridgeNFSysctl makes bridged IPv4 frames (pod to pod on the node's bridge)
// traverse iptables, where kube-router's FORWARD rules match them with
// `-m physdev --physdev-is-bridged`.
const bridgeNFSysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// state is what Cleanup needs to undo a run, even after a kill -9.
type state struct {
	// PID and StartTicks (field 22 of /proc/<pid>/stat) identify the
	// kube-router process, so a reused PID is never killed.
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"startTicks"`
	ToolsDir   string `json:"toolsDir"`
	// FilterTable tells whether the iptables (nf_tables) filter table
	// existed before; Chains and Sets are the filter chains and ipsets that
	// did.
	FilterTable bool     `json:"filterTableExisted"`
	Chains      []string `json:"chains"`
	Sets        []string `json:"sets"`
	// BridgeNFBefore is bridge-nf-call-iptables before Start;
	// BridgeNFChanged is true when Start set it to 1.
	BridgeNFBefore  string `json:"bridgeNfCallIptablesBefore"`
	BridgeNFChanged bool   `json:"bridgeNfCallIptablesChanged"`
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("netpol: reading %s: %w", filepath.Join(dir, stateFileName), err)
	}
	return &s, nil
}

// writeState replaces the state file atomically (write, fsync, rename).
func writeState(dir string, s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFileName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFileName))
}

// tools runs the netfilter tools from one directory.
type tools struct{ dir string }

func (t tools) path(name string) string { return filepath.Join(t.dir, name) }

func (t tools) run(stdin string, name string, args ...string) (string, error) {
	cmd := exec.Command(t.path(name), args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// check verifies the tools are there and iptables is the nf_tables backend.
func (t tools) check() error {
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ipset", "nft"} {
		if _, err := os.Stat(t.path(n)); err != nil {
			return fmt.Errorf("netpol: %s missing (make netpol-bins installs it): %w", t.path(n), err)
		}
	}
	v, err := t.run("", "iptables", "--version")
	if err != nil {
		return fmt.Errorf("netpol: %w", err)
	}
	if !strings.Contains(v, "(nf_tables)") {
		return fmt.Errorf("netpol: %s is not the nf_tables backend: %s", t.path("iptables"), strings.TrimSpace(v))
	}
	return nil
}

// filterTableExists asks nf_tables directly: `iptables-save -t filter`
// cannot tell a missing table from an empty one.
func (t tools) filterTableExists() (bool, error) {
	out, err := t.run("", "nft", "list", "tables", "ip")
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "table ip filter" {
			return true, nil
		}
	}
	return false, nil
}

func (t tools) filterTable() (*table, error) {
	out, err := t.run("", "iptables-save", "-t", "filter")
	if err != nil {
		return nil, err
	}
	return parseSave(out)
}

func (t tools) sets() ([]string, error) {
	out, err := t.run("", "ipset", "list", "-n")
	if err != nil {
		return nil, err
	}
	return parseSetNames(out), nil
}

// killRecorded kills the recorded kube-router with SIGKILL if it still
// runs, and waits until it is gone.
func killRecorded(s *state) error {
	if s.PID <= 0 {
		return nil
	}
	ticks, zombie, err := procid.Stat(s.PID)
	if err != nil || ticks != s.StartTicks || zombie {
		return nil // gone, or the PID now belongs to another process
	}
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("netpol: killing kube-router (pid %d): %w", s.PID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ticks, zombie, err := procid.Stat(s.PID)
		if err != nil || ticks != s.StartTicks || zombie {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("netpol: kube-router (pid %d) still runs 10s after SIGKILL", s.PID)
}

// Cleanup undoes a run recorded in stateDir: it kills the recorded
// kube-router if it still runs (a run whose harness was killed), removes
// every iptables rule, chain and ipset kube-router created (names that
// kube-router uses and that were absent before Start), deletes the
// iptables filter table if the run created it and it is empty again,
// restores bridge-nf-call-iptables, and removes the state file. It touches
// nothing else. Without a state file it does nothing and returns nil.
// Start calls it first, so a new start cleans up after a killed run.
func Cleanup(stateDir string) error {
	s, err := readState(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := killRecorded(s); err != nil {
		return err
	}
	if err := restoreHost(s); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(stateDir, stateFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// restoreHost removes what kube-router created, given what existed before.
// It goes on after an error so that as much as possible is undone, and
// returns the errors joined.
func restoreHost(s *state) error {
	t := tools{dir: s.ToolsDir}
	var errs []error

	// Rules and chains first: a set that a rule still uses cannot be destroyed.
	if now, err := t.filterTable(); err != nil {
		errs = append(errs, err)
	} else if script, _ := cleanupScript(now, s.Chains); script != "" {
		if _, err := t.run(script, "iptables-restore", "--noflush"); err != nil {
			errs = append(errs, fmt.Errorf("removing kube-router chains: %w\n%s", err, script))
		}
	}

	if sets, err := t.sets(); err != nil {
		errs = append(errs, err)
	} else {
		for _, name := range sets {
			if isRouterSet(name) && !slices.Contains(s.Sets, name) {
				if _, err := t.run("", "ipset", "destroy", name); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}

	// iptables-nft creates the whole filter table (its three built-in chains)
	// with the first rule; delete it again only if it was absent before and
	// nothing but those empty chains is left.
	if !s.FilterTable && len(errs) == 0 {
		exists, err := t.filterTableExists()
		if err != nil {
			errs = append(errs, err)
		} else if exists {
			now, err := t.filterTable()
			if err != nil {
				errs = append(errs, err)
			} else if now.pristine() {
				if _, err := t.run("", "nft", "delete", "table", "ip", "filter"); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}

	if s.BridgeNFChanged {
		if err := os.WriteFile(bridgeNFSysctl, []byte(s.BridgeNFBefore+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", bridgeNFSysctl, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("netpol: restoring the host: %w", errors.Join(errs...))
	}
	return nil
}
