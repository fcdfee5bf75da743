package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// binaries maps each binary the cluster runs (relative to BinDir) to the
// make target that builds or installs it.
var binaries = []struct{ name, target string }{
	{"etcd", "make k8s-bins"},
	{"kube-apiserver", "make k8s-bins"},
	{"kube-controller-manager", "make k8s-bins"},
	{"kube-scheduler", "make node-bins"},
	{"kubelet", "make node-bins"},
	{"kube-proxy", "make node-bins"},
	{"containerd", "make node-bins"},
	{"containerd-shim-runc-v2", "make node-bins"},
	{"ctr", "make node-bins"},
	{"runc", "make node-bins"},
	{"nft", "make node-bins"},
	{"cni/bridge", "make node-bins"},
	{"cni/host-local", "make node-bins"},
}

// Preflight checks that the cluster can run here, and says everything that
// is missing at once: root, overlayfs, cgroups, the binaries (with the make
// target that builds them), the iproute2 `ip` tool, free ports, no bridge
// or address of the node range already in place.
func Preflight(opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "not root: the node mounts, creates a bridge, cgroups and nft tables (run as root)")
	}
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fs), "\toverlay\n") {
		problems = append(problems, "no overlayfs in /proc/filesystems: containerd's overlayfs snapshotter needs it (CONFIG_OVERLAY_FS)")
	}
	if len(cgroupHierarchies()) == 0 {
		problems = append(problems, "no cgroup hierarchy mounted (/sys/fs/cgroup)")
	}
	for _, b := range binaries {
		if !isExecutable(filepath.Join(opts.BinDir, b.name)) {
			problems = append(problems, fmt.Sprintf("missing %s: run %s", filepath.Join(opts.BinDir, b.name), b.target))
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		problems = append(problems, "missing the ip command (Debian package iproute2)")
	}
	for _, port := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			problems = append(problems, fmt.Sprintf("port %d is in use (%v)", port, errors.Unwrap(err)))
			continue
		}
		_ = l.Close()
	}
	if _, err := net.InterfaceByName(bridgeName); err == nil {
		problems = append(problems, fmt.Sprintf("a link named %s already exists (another cluster, or not cleaned up: go run ./hack/cluster down)", bridgeName))
	}
	if a, err := addrInNodeRange(); err == nil && a != "" {
		problems = append(problems, fmt.Sprintf("address %s is already in %s, the cluster's range", a, NodeRange))
	}
	if len(filepath.Join(opts.StateDir, "containerd", "containerd.sock")) > 100 {
		problems = append(problems, fmt.Sprintf("state directory %s is too deep for containerd's socket path (unix sockets: 108 bytes)", opts.StateDir))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the local cluster cannot start here:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// runCtx runs a command and returns its combined output, with the output
// in the error.
func runCtx(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
