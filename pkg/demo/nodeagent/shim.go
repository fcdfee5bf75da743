package nodeagent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ShimCommand is the hidden first argument with which the node agent
// re-executes its own program as a "pod shim": the child starts in a new
// mount namespace (CLONE_NEWNS), makes every mount private, bind-mounts the
// pod's volumes at their real mount paths and a per-pod /etc/hosts, then
// execs the container's program. Programs that embed the agent must call
// MaybeRunShim first thing in main (and in TestMain).
const ShimCommand = "__mtls-demo-pod-shim"

// ShimSpec is what the agent hands to the shim, as a JSON file.
type ShimSpec struct {
	Mounts []Mount  `json:"mounts"`
	Argv   []string `json:"argv"`
}

// Mount is one bind mount in the pod's mount namespace.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
	File     bool   `json:"file,omitempty"`
}

// MaybeRunShim runs the shim and never returns when os.Args asks for it;
// otherwise it returns at once.
func MaybeRunShim() {
	if len(os.Args) < 3 || os.Args[1] != ShimCommand {
		return
	}
	if err := runShim(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "pod shim:", err)
		os.Exit(127)
	}
}

func runShim(specFile string) error {
	b, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var spec ShimSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("spec %s: %w", specFile, err)
	}
	if len(spec.Argv) == 0 {
		return fmt.Errorf("spec %s: empty argv", specFile)
	}
	// We are in a fresh copy of the host's mount table; make sure nothing
	// we mount propagates back to the host (systemd makes / shared).
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	for _, m := range spec.Mounts {
		if m.File {
			if _, err := os.Stat(m.Target); err != nil {
				return fmt.Errorf("mount target %s: %w", m.Target, err)
			}
		} else if err := os.MkdirAll(m.Target, 0o755); err != nil {
			return fmt.Errorf("mount target %s: %w", m.Target, err)
		}
		if err := syscall.Mount(m.Source, m.Target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", m.Source, m.Target, err)
		}
		if m.ReadOnly {
			if err := syscall.Mount("", m.Target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("read-only remount of %s: %w", m.Target, err)
			}
		}
	}
	argv0 := spec.Argv[0]
	if !filepath.IsAbs(argv0) {
		return fmt.Errorf("argv[0] %q is not absolute", argv0)
	}
	return syscall.Exec(argv0, spec.Argv, os.Environ())
}
