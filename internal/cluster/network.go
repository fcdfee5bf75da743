package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Addresses: only the RFC 2544 benchmark range 198.18.0.0/15, which is
// neither private (10/8, 172.16/12, 192.168/16) nor public.
const (
	// NodeRange is everything the cluster uses; nothing with a source or
	// destination in it leaves the machine.
	NodeRange = "198.18.0.0/15"
	// PodCIDR is the pod network, on the bridge.
	PodCIDR = "198.18.0.0/16"
	// ServiceCIDR is the Service ClusterIP range.
	ServiceCIDR = "198.19.0.0/16"
	// NodeIP is the bridge's address: the pods' gateway, the node's
	// InternalIP, and where the API server and kubelet listen, so the
	// kubernetes Service (198.19.0.1:443) leads pods to the API server.
	NodeIP = "198.18.0.1"
	// DNSServiceIP is CoreDNS's ClusterIP, the kubelet's clusterDNS.
	DNSServiceIP = "198.19.0.10"
	// ClusterDomain is the only zone CoreDNS answers.
	ClusterDomain = "cluster.local"

	bridgeName = "mtls0"
	cniNetwork = "mtls-cluster"
	nftTable   = "mtls_cluster"
)

// createBridge makes the pods' bridge with the node address, before the API
// server binds to it (the CNI bridge plugin then finds it in place).
func createBridge() error {
	if _, err := run("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	if _, err := run("ip", "addr", "add", NodeIP+"/16", "dev", bridgeName); err != nil {
		return err
	}
	_, err := run("ip", "link", "set", bridgeName, "up")
	return err
}

// deleteBridge deletes the veths on the bridge, then the bridge.
func deleteBridge(name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil // already gone
	}
	out, _ := run("ip", "-o", "link", "show", "master", name)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		dev, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		_, _ = run("ip", "link", "del", dev)
	}
	_, err := run("ip", "link", "del", name)
	return err
}

// nftRules is the cluster's own table: nothing from the node range goes
// anywhere but the node range, the bridge or the host itself, and nothing
// from outside is forwarded into it. The postrouting chain also catches
// the host's own packets to a ClusterIP that kube-proxy does not (yet)
// translate, which would otherwise follow the default route out.
func nftRules() string {
	return fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		ip saddr %[2]s ip daddr != %[2]s counter drop comment "pods never reach outside 198.18.0.0/15"
		ip daddr %[2]s ip saddr != %[2]s counter drop comment "nothing outside reaches pods"
		iifname "%[3]s" meta nfproto ipv6 counter drop
	}
	chain postrouting {
		type filter hook postrouting priority filter - 10; policy accept;
		oifname != { "%[3]s", "lo" } ip daddr %[2]s counter drop comment "node addresses stay on the machine"
		oifname != { "%[3]s", "lo" } ip saddr %[2]s counter drop
	}
}
`, nftTable, NodeRange, bridgeName)
}

func nft(binDir string, args ...string) (string, error) {
	return run(filepath.Join(binDir, "nft"), args...)
}

// loadNFTable adds the cluster's nft table (whole, in one transaction).
func loadNFTable(binDir, stateDir string) error {
	path := filepath.Join(stateDir, "nftables.nft")
	if err := os.WriteFile(path, []byte(nftRules()), 0o600); err != nil {
		return err
	}
	_, err := nft(binDir, "-f", path)
	return err
}

// nftTables lists the host's nft tables as "family name".
func nftTables(binDir string) ([]string, error) {
	out, err := nft(binDir, "-j", "list", "tables")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("nft -j list tables: %w", err)
	}
	var tables []string
	for _, o := range doc.Nftables {
		raw, ok := o["table"]
		if !ok {
			continue
		}
		var t struct{ Family, Name string }
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, err
		}
		tables = append(tables, t.Family+" "+t.Name)
	}
	sort.Strings(tables)
	return tables, nil
}

// iptablesCommands are the iptables and ip6tables the node's components
// would find (bin/ first, then PATH); none on a host without iptables.
func iptablesCommands(binDir string) []string {
	var out []string
	for _, name := range []string{"iptables", "ip6tables"} {
		if p := filepath.Join(binDir, name); isExecutable(p) {
			out = append(out, p)
		} else if p, err := exec.LookPath(name); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// iptablesChains lists the chains of one table.
func iptablesChains(ipt, table string) ([]string, error) {
	out, err := run(ipt, "-w", "-t", table, "-S")
	if err != nil {
		return nil, err
	}
	var chains []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "-N" || f[0] == "-P") {
			chains = append(chains, f[1])
		}
	}
	return chains, nil
}

// restoreNetfilter deletes the node's nft tables that did not exist before
// and the kubelet's iptables chains that did not exist before (with the
// rules that jump to them).
func restoreNetfilter(r *record) []error {
	var errs []error
	tables, err := nftTables(r.BinDir)
	if err != nil {
		return []error{err}
	}
	for _, t := range nodeNFTables {
		if contains(tables, t) && !contains(r.NFTables, t) {
			if _, err := nft(r.BinDir, "delete", "table", t); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, ipt := range iptablesCommands(r.BinDir) {
		for _, table := range []string{"filter", "nat", "mangle"} {
			before, ok := r.IPTables[filepath.Base(ipt)+" "+table]
			if !ok {
				continue
			}
			now, err := iptablesChains(ipt, table)
			if err != nil {
				continue
			}
			for _, c := range kubeletIPTablesChains {
				if contains(now, c) && !contains(before, c) {
					if err := deleteIPTablesChain(ipt, table, c); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
	}
	return errs
}

func deleteIPTablesChain(ipt, table, chain string) error {
	out, err := run(ipt, "-w", "-t", table, "-S")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") && strings.Contains(l, "-j "+chain) {
			args := append([]string{"-w", "-t", table, "-D"}, strings.Fields(strings.TrimPrefix(l, "-A "))...)
			_, _ = run(ipt, args...)
		}
	}
	_, _ = run(ipt, "-w", "-t", table, "-F", chain)
	_, err = run(ipt, "-w", "-t", table, "-X", chain)
	return err
}

// forwardRule lets traffic inside the node range through an iptables
// FORWARD chain whose policy drops, as Docker sets it on CI runners: an
// accept in the cluster's own nft table cannot overrule another base
// chain's drop, and br_netfilter sends bridged pod traffic through it.
var forwardRule = []string{"FORWARD", "-s", NodeRange, "-d", NodeRange, "-m", "comment", "--comment", "mtls-webhook local cluster", "-j", "ACCEPT"}

// allowForwarding adds forwardRule to every IPv4 iptables whose FORWARD
// policy is not ACCEPT, recording each in r before it changes it. On a
// host without iptables, or whose FORWARD chain accepts, it does nothing.
func allowForwarding(r *record) error {
	for _, ipt := range iptablesCommands(r.BinDir) {
		if filepath.Base(ipt) != "iptables" {
			continue
		}
		out, err := run(ipt, "-w", "-S", "FORWARD")
		if err != nil || strings.Contains(out, "-P FORWARD ACCEPT") {
			continue
		}
		r.ForwardAccept = append(r.ForwardAccept, ipt)
		if err := r.save(); err != nil {
			return err
		}
		if _, err := run(ipt, append([]string{"-w", "-I"}, forwardRule...)...); err != nil {
			return err
		}
	}
	return nil
}

// restoreForwarding deletes the rules allowForwarding added.
func restoreForwarding(r *record) {
	for _, ipt := range r.ForwardAccept {
		for range 10 {
			if _, err := run(ipt, append([]string{"-w", "-D"}, forwardRule...)...); err != nil {
				break
			}
		}
	}
}

// addrInNodeRange reports the first host address already in NodeRange, so
// Start refuses instead of clashing with it.
func addrInNodeRange() (string, error) {
	_, rng, _ := net.ParseCIDR(NodeRange)
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ip, _, err := net.ParseCIDR(a.String()); err == nil && rng.Contains(ip) {
				return fmt.Sprintf("%s on %s", a, i.Name), nil
			}
		}
	}
	return "", nil
}

var errLocked = errors.New("another local cluster is running on this machine")

// machineLock is held while a cluster runs or a cleanup works. It is an
// abstract unix socket: it leaves no file behind and vanishes with its
// process, even after kill -9.
type machineLock struct{ l net.Listener }

func lockMachine() (*machineLock, error) {
	l, err := net.Listen("unix", "@mtls-webhook-local-cluster")
	if err != nil {
		return nil, fmt.Errorf("%w (the lock @mtls-webhook-local-cluster is held): %w", errLocked, err)
	}
	return &machineLock{l: l}, nil
}

func (m *machineLock) Close() error { return m.l.Close() }
