package procid

import (
	"os"
	"os/exec"
	"testing"
)

func TestStatOfOwnAndExitedProcesses(t *testing.T) {
	start, zombie, err := Stat(os.Getpid())
	if err != nil || start == 0 || zombie {
		t.Fatalf("own process: start %d zombie %t err %v", start, zombie, err)
	}
	if !Running(os.Getpid(), start) || Running(os.Getpid(), start+1) {
		t.Error("Running does not tell the process from one with another start time")
	}
	// A child that exited and is not reaped yet is a zombie; once reaped
	// it is gone.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	childStart := StartTicks(pid)
	_ = cmd.Wait()
	if Running(pid, childStart) {
		t.Error("a reaped child still counts as running")
	}
	if StartTicks(-1) != 0 {
		t.Error("no process, yet a start time")
	}
}
