package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPauseExitsZeroOnSignal runs the real binary: it must keep running
// until signalled, then exit 0 on SIGTERM and on SIGINT.
func TestPauseExitsZeroOnSignal(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pause")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(bin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("pause exited before a signal: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v: pause exited with %v, want 0; stderr %q", sig, err, stderr.String())
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%v: pause still running after 5s", sig)
		}
		if !strings.Contains(stderr.String(), "Shutting down") {
			t.Errorf("%v: stderr %q, want the shutdown message", sig, stderr.String())
		}
	}
}

// TestReapCollectsZombies leaves an exited child unwaited and checks that
// reap() collects it (the child's /proc entry disappears).
func TestReapCollectsZombies(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	stat := filepath.Join("/proc", strconv.Itoa(pid), "stat")
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(stat)
		if err != nil {
			t.Fatalf("child %d vanished before reaping: %v", pid, err)
		}
		if strings.Contains(string(data), ") Z ") {
			break // a zombie now
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d never became a zombie: %s", pid, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	reap()
	if _, err := os.Stat(stat); !os.IsNotExist(err) {
		t.Fatalf("zombie %d still there after reap (stat err %v)", pid, err)
	}
}
