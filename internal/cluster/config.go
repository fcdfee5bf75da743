package cluster

import (
	"fmt"
	"path/filepath"
)

// Fixed ports: one local cluster per machine, and Preflight says which one
// is taken. The API server and the kubelet listen on the bridge address,
// everything else on loopback.
const (
	APIServerPort  = 6443
	kubeletPort    = 10250
	kubeletHealthz = 10248
	proxyHealthz   = 10256
	proxyMetrics   = 10249
	etcdClientPort = 23790
	etcdPeerPort   = 23800
)

// ports are the TCP ports Preflight checks.
var ports = []int{APIServerPort, kubeletPort, kubeletHealthz, proxyHealthz, proxyMetrics, etcdClientPort, etcdPeerPort}

// containerdConfig is containerd 2.x's config (version 4, no imports from /etc) with every
// directory under the state directory: root, state, socket, shim sockets,
// runc state, CNI config and network namespaces, so nothing of the node
// lands in /var/lib/containerd, /run/containerd or /var/run/netns.
// restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE and cannot give
// sandboxes the -998 that containerd asks for, and containerd would fail
// every sandbox without this setting.
func (c *Cluster) containerdConfig() string {
	s := c.opts.StateDir
	return fmt.Sprintf(`version = 4
root = %[1]q
state = %[2]q
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[plugins.'io.containerd.server.v1.grpc']
  address = %[3]q

[plugins.'io.containerd.server.v1.ttrpc']
  address = "%[3]s.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = %[4]q

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = %[5]q

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[6]q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = ""

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q
    max_conf_num = 1
    use_internal_loopback = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[9]q
        Root = %[10]q
        SystemdCgroup = false
`,
		filepath.Join(s, "containerd", "root"),
		filepath.Join(s, "containerd", "state"),
		c.containerdSocket(),
		filepath.Join(s, "containerd", "opt"),
		c.shimSocketDir(),
		c.opts.SandboxImage,
		filepath.Join(c.opts.BinDir, "cni"),
		filepath.Join(s, "cni", "net.d"),
		filepath.Join(c.opts.BinDir, "runc"),
		filepath.Join(s, "runc"),
	)
}

// cniConfig is a bridge with the node address as gateway, no masquerade
// (nothing leaves the machine), and host-local addresses kept in the state
// directory.
func (c *Cluster) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`, cniNetwork, bridgeName, filepath.Join(c.opts.StateDir, "cni", "ipam"), PodCIDR, NodeIP)
}

// kubeletConfig: cgroup v1 allowed (kubelet 1.37 refuses it unless told,
// and some hosts still run it), cgroupfs, no iptables chains, every
// directory it can be given under the state directory, CoreDNS as cluster
// DNS and no host resolv.conf for pods (so no name outside cluster.local is
// ever looked up), and eviction thresholds that a shared test machine does
// not trip.
func (c *Cluster) kubeletConfig() string {
	p := c.pki.path
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]q}
authorization: {mode: Webhook}
tlsCertFile: %[5]q
tlsPrivateKeyFile: %[6]q
clusterDomain: %[7]s
clusterDNS: [%[8]s]
resolvConf: ""
containerRuntimeEndpoint: unix://%[9]s
imageServiceEndpoint: unix://%[9]s
podLogsDir: %[10]q
volumePluginDir: %[11]q
makeIPTablesUtilChains: false
protectKernelDefaults: false
failSwapOn: false
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
nodeStatusReportFrequency: 10s
`,
		NodeIP, kubeletPort, kubeletHealthz,
		p("ca.crt"), p("kubelet-serving.crt"), p("kubelet-serving.key"),
		ClusterDomain, DNSServiceIP,
		c.containerdSocket(),
		filepath.Join(c.opts.StateDir, "pod-logs"),
		filepath.Join(c.opts.StateDir, "kubelet-plugins"),
	)
}

// proxyConfig: nftables mode (one table, ip kube-proxy), NodePorts only on
// the node address, and no conntrack sysctls touched.
func (c *Cluster) proxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clusterCIDR: %[1]s
hostnameOverride: %[2]s
bindAddress: %[3]s
healthzBindAddress: 127.0.0.1:%[4]d
metricsBindAddress: 127.0.0.1:%[5]d
nodePortAddresses: ["%[3]s/32"]
clientConnection:
  kubeconfig: %[6]q
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`, PodCIDR, c.opts.NodeName, NodeIP, proxyHealthz, proxyMetrics, filepath.Join(c.opts.StateDir, "kubeconfig", "kube-proxy.conf"))
}
