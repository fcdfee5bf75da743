package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// HostState is what a cluster could change on the host, as seen from
// outside: sysctls, links, nft tables, mounts, top-level cgroups and the
// entries of the host directories a node writes to. Take one before Start
// and one after Stop: Diff must be empty.
type HostState struct {
	Sysctls  map[string]string
	Links    []string // "name type"
	NFTables []string // "family name"
	Mounts   []string // "mount point fstype"
	Cgroups  []string // directories at the top of every hierarchy
	Entries  []string // names in /run, /var/run/netns, /var/lib, /var/log, /etc, /opt
}

// snapshotSysctlDirs are read whole (files directly inside), on top of
// trackedSysctls, so that a change nobody expected shows up too.
var snapshotSysctlDirs = []string{"net/ipv4", "net/ipv4/conf/all", "net/ipv4/conf/default", "net/bridge", "net/netfilter", "vm"}

// SnapshotHost reads the host state; binDir holds nft.
func SnapshotHost(binDir string) (HostState, error) {
	h := HostState{Sysctls: map[string]string{}}
	for _, s := range trackedSysctls {
		if v, err := readSysctl(s); err == nil {
			h.Sysctls[s] = v
		}
	}
	for _, d := range snapshotSysctlDirs {
		ents, _ := os.ReadDir(filepath.Join("/proc/sys", d))
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), "nf_conntrack_count") {
				continue
			}
			s := d + "/" + e.Name()
			if v, err := readSysctl(s); err == nil {
				h.Sysctls[s] = v
			}
		}
	}
	out, err := run("ip", "-o", "link", "show")
	if err != nil {
		return h, err
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		h.Links = append(h.Links, name)
	}
	if h.NFTables, err = nftTables(binDir); err != nil {
		return h, err
	}
	for _, m := range mounts() {
		h.Mounts = append(h.Mounts, m.point+" "+m.fstype)
	}
	for _, hier := range cgroupHierarchies() {
		ents, _ := os.ReadDir(hier)
		for _, e := range ents {
			if e.IsDir() {
				h.Cgroups = append(h.Cgroups, filepath.Join(hier, e.Name()))
			}
		}
	}
	for _, d := range []string{"/run", "/var/run/netns", "/var/lib", "/var/log", "/etc", "/opt"} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			h.Entries = append(h.Entries, filepath.Join(d, e.Name()))
		}
	}
	for _, l := range [][]string{h.Links, h.NFTables, h.Mounts, h.Cgroups, h.Entries} {
		sort.Strings(l)
	}
	return h, nil
}

// Diff lists what differs from before ("" when nothing does).
func (h HostState) Diff(before HostState) string {
	var b strings.Builder
	keys := map[string]bool{}
	for k := range h.Sysctls {
		keys[k] = true
	}
	for k := range before.Sysctls {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if h.Sysctls[k] != before.Sysctls[k] {
			fmt.Fprintf(&b, "sysctl %s: %q before, %q now\n", k, before.Sysctls[k], h.Sysctls[k])
		}
	}
	diffList(&b, "link", before.Links, h.Links)
	diffList(&b, "nft table", before.NFTables, h.NFTables)
	diffList(&b, "mount", before.Mounts, h.Mounts)
	diffList(&b, "cgroup", before.Cgroups, h.Cgroups)
	diffList(&b, "entry", before.Entries, h.Entries)
	return b.String()
}

func diffList(b *strings.Builder, what string, before, now []string) {
	for _, s := range now {
		if !contains(before, s) {
			fmt.Fprintf(b, "%s added: %s\n", what, s)
		}
	}
	for _, s := range before {
		if !contains(now, s) {
			fmt.Fprintf(b, "%s removed: %s\n", what, s)
		}
	}
}
