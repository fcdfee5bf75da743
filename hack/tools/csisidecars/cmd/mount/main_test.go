package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// What k8s.io/mount-utils v0.34 execs for csi-lib: the tmpfs of the data
// root, the two halves of a read-only bind mount, and plain umount.
func TestParseMountUtilsCommandLines(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []call
	}{
		{[]string{"-t", "tmpfs", "tmpfs", "/csi-data-dir/inmemfs"},
			[]call{{"tmpfs", "/csi-data-dir/inmemfs", "tmpfs", 0, ""}}},
		{[]string{"-o", "bind", "/data/vol", "/pods/x/mount"},
			[]call{{"/data/vol", "/pods/x/mount", "", unix.MS_BIND, ""}}},
		{[]string{"-o", "bind,remount,ro", "/data/vol", "/pods/x/mount"},
			[]call{{"/data/vol", "/pods/x/mount", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY, ""}}},
		// util-linux behaviour: a bind with flags becomes bind + remount.
		{[]string{"-o", "bind,ro,nosuid", "/a", "/b"},
			[]call{{"/a", "/b", "", unix.MS_BIND, ""}, {"", "/b", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID, ""}}},
		{[]string{"-t", "tmpfs", "-o", "size=1m,mode=0700,noexec", "none", "/t"},
			[]call{{"none", "/t", "tmpfs", unix.MS_NOEXEC, "size=1m,mode=0700"}}},
		{[]string{"--make-rprivate", "/t"},
			[]call{{"", "/t", "", unix.MS_PRIVATE | unix.MS_REC, ""}}},
		{[]string{"-o", "ro,rw", "-t", "tmpfs", "tmpfs", "/t"},
			[]call{{"tmpfs", "/t", "tmpfs", 0, ""}}},
	} {
		r, err := parseMount(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if got := r.calls(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: calls %+v, want %+v", tc.args, got, tc.want)
		}
	}
	for _, bad := range [][]string{{}, {"/only-a-target-without-type"}, {"-t"}, {"-x", "a", "b"}, {"a", "b", "c"}} {
		if _, err := parseMount(bad); err == nil {
			t.Errorf("%q: parsed, want an error", bad)
		}
	}
}

const childEnv = "MOUNT_HELPER_CHILD_DIR"

// TestMain doubles as the child of TestMountsInAPrivateNamespace: with
// childEnv set, it mounts for real and exits instead of running tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := mountChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		fmt.Println("child: mounts OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestMountsInAPrivateNamespace re-runs this test binary in a mount
// namespace of its own (Go makes its propagation private, so nothing
// reaches the host) where the child mounts for real.
func TestMountsInAPrivateNamespace(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "child: mounts OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	// Nothing leaked into this namespace.
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), dir) {
		t.Errorf("a mount of the child is visible outside its namespace:\n%s", mounts)
	}
}

// mountChild does what csi-lib makes mount-utils exec: a tmpfs, a
// read-only bind mount of it (in mount-utils' two calls), umounts, and the
// "not mounted" probe.
func mountChild(dir string) error {
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	err := umount([]string{src})
	var ec exitCode
	if !errors.As(err, &ec) || ec.code != 32 || !strings.Contains(ec.msg, "not mounted") {
		return fmt.Errorf("umount of a plain directory = %w, want exit 32 \"not mounted\"", err)
	}
	if err := mount([]string{"-t", "tmpfs", "-o", "size=1m", "tmpfs", src}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "tls.crt"), []byte("cert"), 0o600); err != nil {
		return err
	}
	if err := mount([]string{"-o", "bind", src, dst}); err != nil {
		return err
	}
	if err := mount([]string{"-o", "bind,remount,ro", src, dst}); err != nil {
		return err
	}
	if data, err := os.ReadFile(filepath.Join(dst, "tls.crt")); err != nil || string(data) != "cert" {
		return fmt.Errorf("read through the bind mount: %q, %w", data, err)
	}
	if err := os.WriteFile(filepath.Join(dst, "x"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("write to the read-only bind mount: %w, want EROFS", err)
	}
	for _, d := range []string{dst, src} {
		if err := umount([]string{d}); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(src, "tls.crt")); !os.IsNotExist(err) {
		return fmt.Errorf("tmpfs content still there after umount: %w", err)
	}
	return nil
}
