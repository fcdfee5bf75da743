package podnet

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs f on a thread inside the network namespace of pid.
func inNetns(t *testing.T, pid int, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// loUp sets the loopback interface up in the calling thread's namespace.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// TestCaptureSeesClientBytesInAnotherNamespace starts a process in a
// network namespace of its own, serves TCP inside it, and checks that the
// capture records what a client sent there, once per connection and in
// order, and nothing sent to another port.
func TestCaptureSeesClientBytesInAnotherNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (setns, AF_PACKET): run as root, as make test does")
	}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid

	iso, err := Inspect(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !iso.OwnNetNamespace || iso.OwnPIDNamespace || iso.OwnMountNamespace {
		t.Fatalf("Inspect(%d) = %+v, want only a network namespace of its own", pid, iso)
	}
	if iso.PIDInNamespace != pid {
		t.Fatalf("PIDInNamespace = %d, want %d (same pid namespace)", iso.PIDInNamespace, pid)
	}

	const port, other = 18443, 18444
	var lns []net.Listener
	if err := inNetns(t, pid, func() error {
		if err := loUp(); err != nil {
			return err
		}
		for _, p := range []int{port, other} {
			ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, ln := range lns {
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
			}
		}()
	}
	// The host cannot reach that namespace's loopback either: the listener
	// exists only there.
	if c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
		_ = c.Close()
		t.Fatal("the namespace's port answered on the host's loopback")
	}

	// DialFrom reaches the namespace's own listener, and only that.
	if err := DialFrom(pid, fmt.Sprintf("127.0.0.1:%d", other), time.Second); err != nil {
		t.Fatalf("DialFrom the namespace to its own listener: %v", err)
	}
	if err := DialFrom(pid, "127.0.0.1:18445", time.Second); err == nil {
		t.Fatal("DialFrom to a port nothing listens on in the namespace succeeded")
	}

	capt, err := CapturePod(pid, port, 16)
	if err != nil {
		t.Fatal(err)
	}
	// The same traffic through destination filters: one that names the
	// address the client dials, one that names another.
	captTo, err := CapturePod(pid, port, 16, netip.MustParseAddr("198.18.0.9"), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	captElsewhere, err := CapturePod(pid, port, 16, netip.MustParseAddr("198.18.0.9"))
	if err != nil {
		t.Fatal(err)
	}
	send := func(p int, msg string) {
		t.Helper()
		if err := inNetns(t, pid, func() error {
			c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			_, err = c.Write([]byte(msg))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	send(port, `{"request_id": "1"} and more than sixteen bytes`)
	send(other, "not this one")
	send(port, "second")
	deadline := time.Now().Add(5 * time.Second)
	for len(capt.Conns()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []*Capture{capt, captTo, captElsewhere} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n, f := len(captElsewhere.Conns()), captElsewhere.Frames(); n != 0 || f != 0 {
		t.Errorf("capture limited to 198.18.0.9 saw %d connections, %d frames to 127.0.0.1; want none", n, f)
	}
	if got := captTo.Conns(); len(got) != 2 {
		t.Errorf("capture limited to 198.18.0.9 and 127.0.0.1 saw %d connections %q, want 2", len(got), got)
	}
	got := capt.Conns()
	want := [][]byte{[]byte(`{"request_id": "`), []byte("second")}
	if len(got) != len(want) {
		t.Fatalf("captured %d connections %q, want %q", len(got), got, want)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("connection %d: captured %q, want %q", i, got[i], want[i])
		}
	}
	if capt.Frames() == 0 {
		t.Error("Frames() = 0 after captured data")
	}
}
