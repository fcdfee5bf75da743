package nodeagent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
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
	// User is who the program runs as; nil keeps root.
	User *User `json:"user,omitempty"`
	// ReadOnlyRoot makes / read-only for the program
	// (readOnlyRootFilesystem); the bind mounts keep their own modes.
	ReadOnlyRoot bool `json:"readOnlyRoot,omitempty"`
	// NoNewPrivs keeps the program and its children from gaining
	// privileges through set-user-ID files (allowPrivilegeEscalation: false).
	NoNewPrivs bool `json:"noNewPrivs,omitempty"`
}

// User is a container's identity: runAsUser, runAsGroup, and the pod's
// fsGroup and supplementalGroups as supplementary groups, as a kubelet
// sets them.
type User struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
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
	if spec.ReadOnlyRoot {
		if err := syscall.Mount("", "/", "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("read-only remount of /: %w", err)
		}
	}
	if spec.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	argv0 := spec.Argv[0]
	if !filepath.IsAbs(argv0) {
		return fmt.Errorf("argv[0] %q is not absolute", argv0)
	}
	if spec.User == nil {
		return syscall.Exec(argv0, spec.Argv, os.Environ())
	}
	// Open the program while still root: the user the container runs as
	// may not be able to reach it (a checkout under /root), which a real
	// container, whose image carries the program, would never notice.
	fd, err := syscall.Open(argv0, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", argv0, err)
	}
	if err := dropTo(*spec.User); err != nil {
		return err
	}
	return execFD(fd, spec.Argv, os.Environ())
}

// dropTo switches every thread of the process to u for good.
func dropTo(u User) error {
	groups := make([]int, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", u.Groups, err)
	}
	if err := syscall.Setgid(int(u.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(int(u.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	return nil
}

// execFD executes the program open at fd (execveat with AT_EMPTY_PATH),
// so no path has to be resolved as the new user.
func execFD(fd int, argv, env []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty, err := syscall.BytePtrFromString("")
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat %s: %w", argv[0], errno)
}
