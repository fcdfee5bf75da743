package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/procid"
)

func TestCertManagerCRDs(t *testing.T) {
	dir, err := CertManagerCRDs("")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cert-manager.io_issuers.yaml", "cert-manager.io_clusterissuers.yaml", "cert-manager.io_certificates.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 5 distinct", ports)
		}
		seen[p] = true
	}
}

// TestDeathSignalledDiesWithItsParent starts a long sleep through the
// wrapper DieWithCaller uses, from a shell that then dies by SIGKILL
// without stopping it: the sleep must die with it.
func TestDeathSignalledDiesWithItsParent(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	w, err := deathSignalled(sleep)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Remove(w) }()
	out, _ := exec.Command("sh", "-c", "'"+w+"' 300 >/dev/null 2>&1 & echo $!; sleep 0.2; kill -9 $$").Output()
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("no PID from the shell: %q", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, zombie, err := procid.Stat(pid)
		if err != nil || zombie {
			return // gone (or only waiting for init to reap it)
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("pid %d still runs 5s after its parent was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunDirsOfGoneProcessesAreSwept: a run directory left by a process
// that died without Stop is removed by the next run; a live process's is
// kept, and Stop's own removal only touches run directories.
func TestRunDirsOfGoneProcessesAreSwept(t *testing.T) {
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	gonePID, goneTicks := child.Process.Pid, procid.StartTicks(child.Process.Pid)
	_ = child.Wait()
	root := stateRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	gone, err := os.MkdirTemp(root, fmt.Sprintf("%s%d-%d-", runPrefix, gonePID, goneTicks))
	if err != nil {
		t.Fatal(err)
	}
	mine, err := newRunDir()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(mine) }()
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("the run directory of gone pid %d survived: %v", gonePID, err)
	}
	again, err := newRunDir()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(again) }()
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a live process's run directory was swept: %v", err)
	}
	if !isRunDir(mine) || isRunDir(filepath.Dir(mine)) || isRunDir(os.TempDir()) {
		t.Error("isRunDir accepts more than run directories")
	}
}
