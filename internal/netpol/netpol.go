// Package netpol enforces NetworkPolicy on the local single-node cluster with
// kube-router's network-policy controller (kube-router v2.1.0, pinned in
// hack/tools/kuberouter), run with only its firewall: no routing, no service
// proxy. It is a harness, not a library: it changes the host's netfilter
// state while it runs and restores it afterwards.
//
// # Why kube-router
//
// sigs.k8s.io/kube-network-policies needs the nft `queue` statement, which
// this kernel lacks (CONFIG_NFT_QUEUE unset). kube-router's firewall needs
// only iptables and ipset: ip_set, xt_set, conntrack, comment, mark,
// multiport, physdev, addrtype, limit, NFLOG and REJECT, all built into the
// kernel here. iptables is the nf_tables backend (xtables-nft-multi, Debian's
// default): its rules live in the nf_tables table `ip filter`, next to
// kube-proxy's own nftables table, and `nft list table ip filter` shows
// them (the iptables comments are not shown by nft 1.0.6; the matches it
// cannot translate show as "xt match physdev" etc.). The kernel's legacy
// iptables tables are never touched: only the nf_tables tools are wrapped.
//
// # What it changes on the host, and how that is undone
//
// kube-router inserts jumps at the top of the filter table's INPUT, FORWARD
// and OUTPUT chains (comment "kube-router netpol - <hash>") to its chains
// KUBE-ROUTER-INPUT/FORWARD/OUTPUT, and creates KUBE-NWPLCY-* (one per
// policy, plus KUBE-NWPLCY-DEFAULT) and KUBE-POD-FW-* (one per local pod)
// chains and KUBE-SRC-*/KUBE-DST-* ipsets (TMP-* ones for the length of an
// atomic swap). Every sync it rewrites the whole filter table with
// iptables-save/iptables-restore, round-tripping the rules of others
// unchanged (their counters restart at zero). A rule another process adds
// between kube-router's save and restore is lost; kubelet re-creates its
// KUBE-FIREWALL rules on its own.
//
// Before kube-router starts, Start writes StateDir/netpol-state.json: the
// filter chains and ipsets that exist, whether the filter table exists, and
// net.bridge.bridge-nf-call-iptables; then the kube-router PID and start
// time. Stop (and Cleanup, after a kill -9 of the harness) kills that PID
// only, removes the kube-router chains and the rules that jump to them with
// one `iptables-restore --noflush`, destroys the kube-router ipsets, deletes
// the filter table if the run created it and it is empty again, and restores
// the sysctl. Only objects with kube-router's names that were absent before
// Start are removed; Start refuses to run if such objects already exist and
// are not from a recorded run. Start calls Cleanup(StateDir) first, so a new
// start cleans up after a killed run.
//
// # Bridged pod-to-pod traffic: br_netfilter
//
// Pods on the same bridge (the CNI bridge, e.g. cni0) talk at layer 2; those
// frames reach iptables only with net.bridge.bridge-nf-call-iptables=1
// (br_netfilter), and kube-router matches them in FORWARD with
// `-m physdev --physdev-is-bridged`. Without it a policy between two pods of
// the node is silently not enforced. br_netfilter is built into this kernel
// (CONFIG_BRIDGE_NETFILTER=y) and the sysctl is 1 by default; Start records
// the value, sets it to 1 if it is not, and Stop/Cleanup restore it. If
// /proc/sys/net/bridge is missing (br_netfilter is a module that is not
// loaded), Start refuses and says so; it does not load modules.
//
// # Plugging it into the local cluster
//
// Start it after the API server answers and after the kubelet has registered
// the Node (kube-router reads the Node once, at start, and exits if it is
// missing), from an ordinary goroutine (kube-router gets SIGKILL when the OS
// thread that started it exits, which Go does only for a goroutine that
// ends while locked with runtime.LockOSThread):
//
//	fw, err := netpol.Start(ctx, netpol.Options{
//		Binary:      filepath.Join(binDir, "kube-router"), // make netpol-bins
//		Kubeconfig:  adminKubeconfig, // lists/watches pods, namespaces, networkpolicies, nodes, services, endpoints, endpointslices
//		NodeName:    nodeName,        // the Node's name, as registered by the kubelet
//		StateDir:    filepath.Join(stateDir, "netpol"),
//		PodCIDR:     "198.18.0.0/16",
//		ServiceCIDR: "198.19.0.0/16", // the API server's --service-cluster-ip-range
//		Log:         logFile,
//	})
//	...
//	err = fw.Stop()
//
// On the next start, or in `cluster down` after a kill -9, call
// netpol.Cleanup(filepath.Join(stateDir, "netpol")), or simply Start again
// (it calls Cleanup first). Stop it before the node harness removes the
// kubelet's own iptables chains: a running kube-router rewrites the whole
// filter table and would restore them on its next sync. Stop deletes the
// filter table only if it was absent before Start and holds nothing else
// afterwards; if the kubelet's chains are still in it then, the table is
// left to whoever removes them. Requirements on the node:
//
//   - The Node must have an InternalIP (kubelet --node-ip), and pods'
//     status.hostIP must equal it: kube-router only firewalls pods whose
//     hostIP is the node's first InternalIP.
//   - Pods must be on a Linux bridge in the host's network namespace
//     (bridge CNI plugin) and br_netfilter present (see above).
//   - The kubelet probes pods from a host address: kube-router accepts
//     traffic to a pod whose source is a local address (addrtype LOCAL), so
//     probes work under any policy.
//   - Denied traffic is REJECTed (ICMP port unreachable: a TCP connect fails
//     at once with "connection refused"), and logged to NFLOG group 100.
//     The host routes that ICMP error to the pod's address, so the bridge
//     must hold the pods' gateway address (bridge plugin isGateway: true, as
//     cni0 does). Without a route to the pods over the bridge the error
//     would not reach the pod and could follow the host's default route off
//     the machine (reasoned from how the kernel routes ICMP errors, not
//     tried; the tests give their bridge the node's address for this).
//   - The kubelet writes its KUBE-FIREWALL and canary chains with whatever
//     iptables is on its PATH. With ToolsDir first in its PATH they land in
//     the same nf_tables filter table, where kube-router keeps them and this
//     package never removes them.
//
// kube-router's first full sync lands about 0.5-1.5 s after start, and a
// new or changed policy is enforced about 0.25 s after the API server has
// it (make test-netpol on this 2-core machine).
//
// Service ClusterIP traffic (kube-proxy, nftables mode) is DNATed before the
// filter table's FORWARD hook, so policies see the pod address, as they
// should. kube-router's health and metrics ports are off (--health-port=0,
// --metrics-port=0), so it listens on nothing.
package netpol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/procid"
)

// Options configure Start. Binary, Kubeconfig, NodeName, StateDir and
// ServiceCIDR are required.
type Options struct {
	// Binary is kube-router (bin/kube-router from make netpol-bins).
	Binary string
	// Kubeconfig is for kube-router's API client.
	Kubeconfig string
	// NodeName is the Node kube-router runs for (its NODE_NAME).
	NodeName string
	// HostnameOverride is passed as --hostname-override; it defaults to
	// NodeName. kube-router looks the Node up by NODE_NAME first.
	HostnameOverride string
	// StateDir holds the state file (and kube-router.log when Log is nil).
	StateDir string
	// PodCIDR is the pods' range. kube-router's firewall does not take it
	// (only its router does); Start checks it lies in 198.18.0.0/15 and
	// does not overlap ServiceCIDR.
	PodCIDR string
	// ServiceCIDR is the Services' range (--service-cluster-ip-range):
	// traffic from pods to it is let through to kube-proxy.
	ServiceCIDR string
	// ToolsDir holds iptables, iptables-save, iptables-restore, ipset and
	// nft; it defaults to netfilter/bin next to Binary (make netpol-bins).
	// kube-router gets it first in its PATH.
	ToolsDir string
	// SyncPeriod is kube-router's periodic full resync (it also syncs on
	// every pod, namespace and policy event); default 5m.
	SyncPeriod time.Duration
	// Verbosity is kube-router's -v (0 by default; 1 logs every sync).
	Verbosity int
	// Log receives kube-router's output; nil writes StateDir/kube-router.log.
	Log io.Writer
}

// Firewall is a running kube-router firewall.
type Firewall struct {
	opts     Options
	tools    tools
	cmd      *exec.Cmd
	done     chan struct{}
	logFile  *os.File
	tail     *tailBuffer
	stopOnce sync.Mutex
	stopped  bool
	stopErr  error
}

// testRange is where every pod and Service address of this project lives
// (RFC 2544 benchmark range).
var testRange = &net.IPNet{IP: net.IPv4(198, 18, 0, 0).To4(), Mask: net.CIDRMask(15, 32)}

func (o *Options) validate() error {
	var missing []string
	for name, v := range map[string]string{"Binary": o.Binary, "Kubeconfig": o.Kubeconfig,
		"NodeName": o.NodeName, "StateDir": o.StateDir, "ServiceCIDR": o.ServiceCIDR} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("netpol: Options need %s", strings.Join(missing, ", "))
	}
	if o.HostnameOverride == "" {
		o.HostnameOverride = o.NodeName
	}
	if o.ToolsDir == "" {
		o.ToolsDir = filepath.Join(filepath.Dir(o.Binary), "netfilter", "bin")
	}
	if o.SyncPeriod == 0 {
		o.SyncPeriod = 5 * time.Minute
	}
	var nets []*net.IPNet
	for name, c := range map[string]string{"ServiceCIDR": o.ServiceCIDR, "PodCIDR": o.PodCIDR} {
		if c == "" {
			continue
		}
		ip, n, err := net.ParseCIDR(c)
		if err != nil {
			return fmt.Errorf("netpol: %s: %w", name, err)
		}
		ones, _ := n.Mask.Size()
		if ip.To4() == nil || !testRange.Contains(n.IP) || ones < 15 {
			return fmt.Errorf("netpol: %s %s is not inside 198.18.0.0/15, the only range this project uses", name, c)
		}
		nets = append(nets, n)
	}
	if len(nets) == 2 && (nets[0].Contains(nets[1].IP) || nets[1].Contains(nets[0].IP)) {
		return fmt.Errorf("netpol: PodCIDR %s and ServiceCIDR %s overlap", o.PodCIDR, o.ServiceCIDR)
	}
	for _, f := range []string{o.Binary, o.Kubeconfig} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("netpol: %w", err)
		}
	}
	return nil
}

// args are kube-router's flags: the firewall alone, IPv4 only, no listening
// port.
func (o *Options) args() []string {
	return []string{
		"--run-firewall=true",
		"--run-router=false",
		"--run-service-proxy=false",
		"--run-loadbalancer=false",
		"--kubeconfig=" + o.Kubeconfig,
		"--hostname-override=" + o.HostnameOverride,
		"--service-cluster-ip-range=" + o.ServiceCIDR,
		"--enable-ipv4=true",
		"--enable-ipv6=false",
		"--health-port=0",
		"--metrics-port=0",
		"--iptables-sync-period=" + o.SyncPeriod.String(),
		"--cache-sync-timeout=1m",
		fmt.Sprintf("--v=%d", o.Verbosity),
	}
}

// Start records the host's netfilter state in StateDir, starts kube-router's
// firewall and returns once kube-router has completed its first full sync
// (its chains are in the filter table), or an error after which the host is
// restored. ctx bounds the start only. Needs root.
func Start(ctx context.Context, opts Options) (*Firewall, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("netpol: kube-router's firewall needs root (iptables, ipset)")
	}
	t := tools{dir: opts.ToolsDir}
	if err := t.check(); err != nil {
		return nil, err
	}
	bridgeNF, err := os.ReadFile(bridgeNFSysctl)
	if err != nil {
		return nil, fmt.Errorf("netpol: bridged pod traffic needs br_netfilter (modprobe br_netfilter): %w", err)
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, err
	}
	if err := Cleanup(opts.StateDir); err != nil {
		return nil, fmt.Errorf("netpol: cleaning up after the previous run: %w", err)
	}

	s := &state{ToolsDir: opts.ToolsDir, BridgeNFBefore: strings.TrimSpace(string(bridgeNF))}
	if s.FilterTable, err = t.filterTableExists(); err != nil {
		return nil, fmt.Errorf("netpol: %w", err)
	}
	before, err := t.filterTable()
	if err != nil {
		return nil, fmt.Errorf("netpol: %w", err)
	}
	s.Chains = before.chains
	if s.Sets, err = t.sets(); err != nil {
		return nil, fmt.Errorf("netpol: %w", err)
	}
	var foreign []string
	foreign = append(foreign, before.routerChains()...)
	for _, n := range s.Sets {
		if isRouterSet(n) {
			foreign = append(foreign, "ipset "+n)
		}
	}
	if len(foreign) > 0 {
		return nil, fmt.Errorf("netpol: the host already holds kube-router objects this harness did not record "+
			"(another kube-router, or one run without it): %s; remove them first (kube-router --cleanup-config)",
			strings.Join(foreign, ", "))
	}
	if err := writeState(opts.StateDir, s); err != nil {
		return nil, fmt.Errorf("netpol: %w", err)
	}

	f := &Firewall{opts: opts, tools: t, done: make(chan struct{})}
	if err := f.start(ctx, s); err != nil {
		if cerr := f.Stop(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return f, nil
}

func (f *Firewall) start(ctx context.Context, s *state) error {
	opts := f.opts
	if s.BridgeNFBefore != "1" {
		s.BridgeNFChanged = true
		if err := writeState(opts.StateDir, s); err != nil {
			return err
		}
		if err := os.WriteFile(bridgeNFSysctl, []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("netpol: setting %s: %w", bridgeNFSysctl, err)
		}
	}

	out := opts.Log
	if out == nil {
		lf, err := os.Create(filepath.Join(opts.StateDir, "kube-router.log"))
		if err != nil {
			return err
		}
		f.logFile, out = lf, lf
	}
	f.tail = &tailBuffer{max: 8 << 10}
	cmd := exec.Command(opts.Binary, opts.args()...)
	cmd.Env = append(os.Environ(),
		"PATH="+opts.ToolsDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"NODE_NAME="+opts.NodeName)
	cmd.Stdout = io.MultiWriter(out, f.tail)
	cmd.Stderr = cmd.Stdout
	// Own process group (a Ctrl-C reaches the harness, which then stops
	// and cleans up), and killed with the harness: the next Start or
	// Cleanup removes what it left.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		close(f.done)
		return fmt.Errorf("netpol: starting %s: %w", opts.Binary, err)
	}
	f.cmd = cmd
	go func() { _ = cmd.Wait(); close(f.done) }()

	s.PID = cmd.Process.Pid
	ticks, _, err := procid.Stat(s.PID)
	if err != nil {
		return fmt.Errorf("netpol: kube-router exited at once: %w\n%s", err, f.tail.String())
	}
	s.StartTicks = ticks
	if err := writeState(opts.StateDir, s); err != nil {
		return err
	}
	return f.waitSynced(ctx)
}

// syncedMarker is a rule kube-router appends to its top-level chains at the
// end of every full sync (ensureExplicitAccept), so it is in the filter
// table once the first sync has been restored.
const syncedMarker = `-A KUBE-ROUTER-FORWARD -m comment --comment "rule to explicitly ACCEPT traffic that comply to network policies"`

func (f *Firewall) waitSynced(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := f.tools.run("", "iptables-save", "-t", "filter")
		if err == nil && strings.Contains(out, syncedMarker) {
			return nil
		}
		select {
		case <-f.done:
			return fmt.Errorf("netpol: kube-router exited before its first sync:\n%s", f.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("netpol: waiting for kube-router's first sync: %w\n%s", ctx.Err(), f.tail.String())
		case <-tick.C:
		}
	}
}

// PID is kube-router's process ID.
func (f *Firewall) PID() int { return f.cmd.Process.Pid }

// Done is closed when kube-router has exited.
func (f *Firewall) Done() <-chan struct{} { return f.done }

// Stop stops kube-router (SIGTERM, SIGKILL after 10 s; by its PID) and
// restores the host as Cleanup does. It may be called more than once.
func (f *Firewall) Stop() error {
	f.stopOnce.Lock()
	defer f.stopOnce.Unlock()
	if f.stopped {
		return f.stopErr
	}
	f.stopped = true
	if f.cmd != nil {
		select {
		case <-f.done:
		default:
			_ = f.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-f.done:
			case <-time.After(10 * time.Second):
				_ = f.cmd.Process.Kill()
				<-f.done
			}
		}
	}
	f.stopErr = Cleanup(f.opts.StateDir)
	if f.logFile != nil {
		_ = f.logFile.Close()
	}
	return f.stopErr
}

// tailBuffer keeps the last max bytes written, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
