package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mtls-demo/mtls-webhook/internal/procid"
)

// recordFile, in the state directory, is written before the cluster
// changes anything on the host and rewritten as it goes, so that Cleanup can
// undo a run that was killed with kill -9 as well as one that stops.
const recordFile = "host-record.json"

// trackedSysctls are the sysctls (paths under /proc/sys) a node may
// change: the kubelet's kernel tunables, the bridge plugin's ip_forward, and
// kube-proxy's conntrack settings (turned off in its config, recorded
// anyway). ip_forward comes first: writing it resets every forwarding
// value after it.
var trackedSysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/forwarding",
	"net/ipv4/conf/default/forwarding",
	"net/ipv4/conf/all/accept_redirects", // the kernel sets it to !ip_forward
	"net/ipv4/conf/all/route_localnet",
	"net/ipv6/conf/all/forwarding",
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"net/netfilter/nf_conntrack_tcp_be_liberal",
	"net/netfilter/nf_conntrack_udp_timeout",
	"net/netfilter/nf_conntrack_udp_timeout_stream",
}

// nodeCgroups are the cgroups the kubelet (kubepods) and containerd
// (k8s.io) create at the top of every hierarchy.
var nodeCgroups = []string{"kubepods", "k8s.io"}

// nodeNFTables are the nft tables the cluster may create: its own and
// kube-proxy's (which kube-proxy leaves behind when it stops).
var nodeNFTables = []string{"inet " + nftTable, "ip kube-proxy", "ip6 kube-proxy"}

// hostPaths are the host paths a node writes to even with every directory
// it can be given pointed into the state directory (measured with
// SnapshotHost): the kubelet's container log links and its device-plugin
// socket (fixed paths), libcni's result cache and mount(8)'s utab. Those
// that did not exist before are removed whole; in those that did, only the
// cluster's entries. Paths the configuration keeps in the state directory
// (/run/containerd, /var/run/netns, /opt/containerd, /var/log/pods) are not
// listed: another containerd on the machine may own them.
var hostPaths = []string{"/var/log/containers", "/var/lib/kubelet", "/var/lib/cni", "/run/mount"}

// kubeletIPTablesChains are the chains kubelets add (in v4 and v6) when
// makeIPTablesUtilChains is on; this cluster turns it off, and removes
// them all the same if they appear.
var kubeletIPTablesChains = []string{"KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"}

// record is what the host looked like before the cluster started, and
// what the cluster started.
type record struct {
	StateDir      string              `json:"stateDir"`
	BinDir        string              `json:"binDir"`
	Sysctls       map[string]string   `json:"sysctls"`       // path -> value before
	BridgeCreated bool                `json:"bridgeCreated"` // set before the bridge is made
	NFTables      []string            `json:"nftTables"`     // node tables that existed before
	IPTables      map[string][]string `json:"iptables"`      // "iptables filter" -> chains before
	ForwardAccept []string            `json:"forwardAccept"` // iptables given forwardRule
	NewCgroups    []string            `json:"newCgroups"`    // node cgroups that did not exist
	NewPaths      []string            `json:"newPaths"`      // host paths that did not exist
	Processes     []recordedProcess   `json:"processes"`
}

type recordedProcess struct {
	Name  string `json:"name"`
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"` // /proc/<pid>/stat starttime, so a reused PID is left alone
}

func (r *record) save() error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(r.StateDir, recordFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func loadRecord(stateDir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, recordFile))
	if err != nil {
		return nil, err
	}
	r := &record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", recordFile, err)
	}
	return r, nil
}

// newRecord reads what the host looks like now.
func newRecord(stateDir, binDir string) (*record, error) {
	r := &record{StateDir: stateDir, BinDir: binDir, Sysctls: map[string]string{}, IPTables: map[string][]string{}}
	for _, s := range trackedSysctls {
		if v, err := readSysctl(s); err == nil {
			r.Sysctls[s] = v
		}
	}
	tables, err := nftTables(binDir)
	if err != nil {
		return nil, err
	}
	for _, t := range nodeNFTables {
		if contains(tables, t) {
			r.NFTables = append(r.NFTables, t)
		}
	}
	for _, ipt := range iptablesCommands(binDir) {
		for _, table := range []string{"filter", "nat", "mangle"} {
			chains, err := iptablesChains(ipt, table)
			if err == nil {
				r.IPTables[filepath.Base(ipt)+" "+table] = chains
			}
		}
	}
	for _, h := range cgroupHierarchies() {
		for _, c := range nodeCgroups {
			dir := filepath.Join(h, c)
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				r.NewCgroups = append(r.NewCgroups, dir)
			}
		}
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			r.NewPaths = append(r.NewPaths, p)
		}
	}
	return r, nil
}

// addProcess records a started process; Cleanup kills it if it is still
// the same process.
func (r *record) addProcess(name string, pid int) error {
	r.Processes = append(r.Processes, recordedProcess{Name: name, Pid: pid, Start: procid.StartTicks(pid)})
	return r.save()
}

// Cleanup undoes what a cluster that used stateDir changed on the host,
// as its record in stateDir says: it kills the cluster's processes (by
// PID), its containers (by cgroup) and containerd shims (by socket),
// unmounts everything under stateDir, deletes the bridge and its veths,
// the nft tables and iptables chains the cluster added, the cgroups and
// host paths it created, and writes back the sysctls it changed. Start
// calls it first; `go run ./hack/cluster down` calls it after a kill -9.
// Without a record it still kills the shims and unmounts.
func Cleanup(stateDir string) error {
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	lock, err := lockMachine()
	if err != nil {
		return err
	}
	defer lock.Close()
	return cleanup(stateDir)
}

func cleanup(stateDir string) error {
	r, err := loadRecord(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		r = &record{StateDir: stateDir}
	} else if err != nil {
		return err
	}
	var errs []error
	// Processes first (the kubelet would restart containers, containerd
	// would remount), then their containers and shims.
	for i := len(r.Processes) - 1; i >= 0; i-- {
		p := r.Processes[i]
		if p.Start != 0 && procid.StartTicks(p.Pid) == p.Start {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
			waitGone(p.Pid, p.Start, 5*time.Second)
		}
	}
	killCgroups(r.NewCgroups)
	killShims(filepath.Join(stateDir, "containerd", "containerd.sock"))

	if err := unmountUnder(stateDir); err != nil {
		errs = append(errs, err)
	}
	if r.BridgeCreated {
		if err := deleteBridge(bridgeName); err != nil {
			errs = append(errs, err)
		}
	}
	restoreForwarding(r)
	if r.BinDir != "" {
		errs = append(errs, restoreNetfilter(r)...)
	}
	if err := removeCgroups(r.NewCgroups); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, restoreSysctls(r.Sysctls)...)
	for _, p := range r.NewPaths {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	removeOwnEntries(stateDir)
	if d := shimSocketDir(stateDir); strings.HasPrefix(d, "/run/mtls-shims-") {
		_ = os.RemoveAll(d)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restoring the host after the cluster in %s: %w", stateDir, err)
	}
	if err := os.Remove(filepath.Join(stateDir, recordFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeOwnEntries removes, from host directories that existed before,
// the entries this cluster made: container log links into the state
// directory and libcni's cached results for the cluster's network.
func removeOwnEntries(stateDir string) {
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/var/log/containers", e.Name())
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, stateDir+"/") {
				_ = os.Remove(p)
			}
		}
	}
	for _, dir := range []string{"/var/lib/cni/results", "/var/lib/cni/networks/" + cniNetwork} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), cniNetwork+"-") || strings.HasSuffix(dir, cniNetwork) {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	return strings.TrimSpace(string(b)), err
}

func writeSysctl(path, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0o644)
}

// restoreSysctls writes back, in trackedSysctls order, every value that
// differs from the recorded one.
func restoreSysctls(before map[string]string) []error {
	var errs []error
	for _, s := range trackedSysctls {
		want, ok := before[s]
		if !ok {
			continue
		}
		if now, err := readSysctl(s); err == nil && now != want {
			if err := writeSysctl(s, want); err != nil {
				errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", s, want, err))
			}
		}
	}
	return errs
}

func waitGone(pid int, start uint64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && procid.StartTicks(pid) == start {
		time.Sleep(50 * time.Millisecond)
	}
}

// killShims kills the containerd-shim-runc-v2 processes serving the
// containerd at socket: they outlive containerd by design.
func killShims(socket string) {
	for _, pid := range shimPIDs(socket) {
		start := procid.StartTicks(pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitGone(pid, start, 5*time.Second)
	}
}

// shimPIDs finds the shims of the containerd at socket by their command
// line (-address <socket>).
func shimPIDs(socket string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == socket {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// cgroupHierarchies are the mount points of every cgroup (v1) and cgroup2
// hierarchy, from /proc/self/mountinfo.
func cgroupHierarchies() []string {
	var out []string
	for _, m := range mounts() {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			out = append(out, m.point)
		}
	}
	sort.Strings(out)
	return out
}

// cgroupTree lists dir and every cgroup below it, deepest first.
func cgroupTree(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// killCgroups SIGKILLs every process in the given cgroups (the
// containers of a node whose kubelet and containerd are gone).
func killCgroups(cgroups []string) {
	for range 50 {
		alive := false
		for _, c := range cgroups {
			for _, d := range cgroupTree(c) {
				b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
				if err != nil {
					continue
				}
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						alive = true
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
		if !alive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroups removes the given cgroups and everything below them,
// deepest first, retrying while the kernel finishes off killed tasks.
func removeCgroups(cgroups []string) error {
	var last error
	for range 50 {
		last = nil
		for _, c := range cgroups {
			for _, d := range cgroupTree(c) {
				if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
					last = fmt.Errorf("removing cgroup %s: %w", d, err)
				}
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

type mount struct{ point, fstype string }

// mounts reads /proc/self/mountinfo.
func mounts() []mount {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		if len(fields) < 7 {
			continue
		}
		fstype := ""
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
				break
			}
		}
		out = append(out, mount{point: unescapeMount(fields[4]), fstype: fstype})
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder unmounts every mount at or below dir, deepest first, until
// none is left (the kubelet's bind mount of its root directory, pod
// volumes, container root filesystems, sandbox shm, network namespaces).
func unmountUnder(dir string) error {
	for range 20 {
		var points []string
		for _, m := range mounts() {
			if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
				points = append(points, m.point)
			}
		}
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		for _, p := range points {
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	}
	return fmt.Errorf("mounts left under %s after 20 rounds of unmounting", dir)
}

// run runs a command and returns its combined output, with the output in
// the error.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
