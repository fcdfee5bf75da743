// Package podnet looks inside the pods of the local node from the host: it
// finds a container's process (by the pod UID in its cgroup path), tells
// whether that process really is isolated (its own pid namespace, an
// overlay root) and captures the packets on the pod's own interface. The
// `make demo` wire proof and the local e2e suite use it; it needs root and
// the node's processes on this host, so it is a harness, not a library.
package podnet

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoProcess is returned when no process of the pod runs on this host.
var ErrNoProcess = errors.New("no process of the pod on this host")

// PodProcess returns the PID of a process of the pod with UID uid whose
// command name (/proc/<pid>/comm) is comm, or of any process of the pod
// except the sandbox's pause when comm is "". The kubelet's cgroupfs driver
// puts every container under .../pod<uid>/<container id>, in every
// hierarchy, so the pod UID in /proc/<pid>/cgroup identifies the pod.
func PodProcess(uid, comm string) (int, error) {
	if uid == "" {
		return 0, errors.New("pod UID is empty")
	}
	needle := "pod" + uid
	// The systemd driver writes the UID with underscores; accept both.
	needleSystemd := "pod" + strings.ReplaceAll(uid, "-", "_")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		s := string(cg)
		if !strings.Contains(s, needle) && !strings.Contains(s, needleSystemd) {
			continue
		}
		name, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		got := strings.TrimSpace(string(name))
		if (comm == "" && got != "pause") || got == comm {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("pod %s, command %q: %w", uid, comm, ErrNoProcess)
}

// Isolation is what the host sees of a process's isolation.
type Isolation struct {
	PID int
	// OwnPIDNamespace: /proc/<pid>/ns/pid differs from this process's.
	OwnPIDNamespace bool
	// OwnNetNamespace, OwnMountNamespace: likewise for net and mnt.
	OwnNetNamespace   bool
	OwnMountNamespace bool
	// RootFSType is the file system type mounted at the process's "/".
	RootFSType string
	// PIDInNamespace is the process's PID as it sees itself (NSpid).
	PIDInNamespace int
}

// Inspect reads the isolation of pid from /proc.
func Inspect(pid int) (Isolation, error) {
	iso := Isolation{PID: pid}
	for _, ns := range []struct {
		name string
		dst  *bool
	}{{"pid", &iso.OwnPIDNamespace}, {"net", &iso.OwnNetNamespace}, {"mnt", &iso.OwnMountNamespace}} {
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name))
		if err != nil {
			return iso, err
		}
		ours, err := os.Readlink("/proc/self/ns/" + ns.name)
		if err != nil {
			return iso, err
		}
		*ns.dst = theirs != ours
	}
	fstype, err := rootFSType(pid)
	if err != nil {
		return iso, err
	}
	iso.RootFSType = fstype
	iso.PIDInNamespace, err = nsPID(pid)
	return iso, err
}

// rootFSType finds the mount at "/" in the process's own mount table.
func rootFSType(pid int) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	fstype := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || fields[4] != "/" {
			continue
		}
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				fstype = fields[i+1] // the last mount on "/" is the visible one
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if fstype == "" {
		return "", fmt.Errorf("pid %d: no mount at / in its mountinfo", pid)
	}
	return fstype, nil
}

// nsPID is the innermost PID in the NSpid line of /proc/<pid>/status.
func nsPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.Atoi(f[len(f)-1])
		}
	}
	return 0, fmt.Errorf("pid %d: no NSpid in /proc/%d/status", pid, pid)
}

// DialFrom opens a TCP connection to addr from inside the network namespace
// of pid, as the pod itself would, and closes it: whether the pod's traffic
// gets through (a NetworkPolicy, a Service) right now.
func DialFrom(pid int, addr string, timeout time.Duration) error {
	target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	defer func() { _ = target.Close() }()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = own.Close() }()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering the network namespace of pid %d: %w", pid, err)
			return
		}
		c, dialErr := net.DialTimeout("tcp", addr, timeout)
		if dialErr == nil {
			_ = c.Close()
		}
		// Back to the host's namespace, and the thread back to the pool. A
		// thread that ended instead would take with it every child process
		// started from it with Pdeathsig (the cluster's are).
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("returning to the host network namespace: %w", err) // the thread stays locked
			return
		}
		runtime.UnlockOSThread()
		errc <- dialErr
	}()
	return <-errc
}
