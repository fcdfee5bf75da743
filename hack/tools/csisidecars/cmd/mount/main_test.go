package main

import (
	"errors"
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

// TestMountsInAPrivateNamespace re-runs this test binary in a mount
// namespace of its own (Go makes its propagation private, so nothing
// reaches the host) where the child mounts for real.
func TestMountsInAPrivateNamespace(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMountChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMountChild") {
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

func TestMountChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		return // only meaningful as the child of TestMountsInAPrivateNamespace
	}
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// umount of a plain directory: mount-utils' "safe not mounted" probe.
	err := umount([]string{src})
	var ec exitCode
	if !errors.As(err, &ec) || ec.code != 32 || !strings.Contains(ec.msg, "not mounted") {
		t.Fatalf("umount of a plain directory = %v, want exit 32 \"not mounted\"", err)
	}
	if err := mount([]string{"-t", "tmpfs", "-o", "size=1m", "tmpfs", src}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "tls.crt"), []byte("cert"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The two calls mount-utils makes for Mount(src, dst, "", {"bind","ro"}).
	if err := mount([]string{"-o", "bind", src, dst}); err != nil {
		t.Fatal(err)
	}
	if err := mount([]string{"-o", "bind,remount,ro", src, dst}); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dst, "tls.crt")); err != nil || string(data) != "cert" {
		t.Fatalf("read through the bind mount: %q, %v", data, err)
	}
	if err := os.WriteFile(filepath.Join(dst, "x"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to the read-only bind mount: %v, want EROFS", err)
	}
	for _, d := range []string{dst, src} {
		if err := umount([]string{d}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "tls.crt")); !os.IsNotExist(err) {
		t.Fatalf("tmpfs content still there after umount: %v", err)
	}
}
