// Package cluster starts the project's one local Kubernetes cluster: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, a node
// (kubelet on containerd and runc, CNI bridge), kube-proxy in nftables mode
// and CoreDNS, all real binaries pinned and built by the Makefile
// (make k8s-bins node-bins). The demo, the e2e suite and any test that
// needs a node start it here.
//
// It is a harness, not a library: it runs as root, uses fixed ports and
// one bridge (one cluster per machine), addresses only in 198.18.0.0/15,
// and lets nothing leave the machine. Everything it changes on the host is
// recorded in the state directory before it is changed, and restored by
// Stop, by a failed Start, and by the next Start (or Cleanup) after a run
// that was killed.
package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
)

// Options configure Start. BinDir and StateDir are required.
type Options struct {
	// BinDir holds the binaries (make k8s-bins node-bins): etcd,
	// kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
	// kube-proxy, containerd, containerd-shim-runc-v2, ctr, runc, nft,
	// cni/{bridge,host-local}.
	BinDir string
	// StateDir holds everything the cluster writes: certificates,
	// kubeconfigs, etcd data, containerd and kubelet state, logs/ and the
	// host record. Start empties it first.
	StateDir string
	// Images are image tarballs (docker-archive or OCI) imported into
	// containerd before the kubelet starts. They must include the sandbox
	// and CoreDNS images. Nothing is ever pulled.
	Images []string
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// NodeName is the node's name (default "mtls-node").
	NodeName string
	// SandboxImage is the CRI pause image (default DefaultSandboxImage).
	SandboxImage string
	// CoreDNSImage is CoreDNS's image (default DefaultCoreDNSImage).
	CoreDNSImage string
	// Timeout bounds Start (default 5 minutes).
	Timeout time.Duration
}

// Image names agreed with the image builder (hack/images).
const (
	DefaultSandboxImage = "localhost/pause:3.10-local"
	DefaultCoreDNSImage = "localhost/coredns:v1.15.0"
	defaultNodeName     = "mtls-node"
)

// Timings are how long Start took to reach each stage, from its call.
type Timings struct {
	APIServerReady time.Duration // /readyz answered 200
	NodeReady      time.Duration // the node reported Ready
	DNSReady       time.Duration // CoreDNS's Deployment available
	Total          time.Duration // Start returned
}

func (t Timings) String() string {
	return fmt.Sprintf("API server ready %s, node Ready %s, DNS ready %s, total %s",
		t.APIServerReady.Round(time.Millisecond), t.NodeReady.Round(time.Millisecond),
		t.DNSReady.Round(time.Millisecond), t.Total.Round(time.Millisecond))
}

// Cluster is a running local cluster. Stop it.
type Cluster struct {
	opts    Options
	log     io.Writer
	lock    *machineLock
	rec     *record
	pki     *pki
	procs   []*proc
	cfg     *rest.Config
	client  kubernetes.Interface
	timings Timings

	stopOnce sync.Once
	stopErr  error
	stopped  chan struct{}
}

type proc struct {
	name string
	log  string
	p    *controlplane.Process
}

// Start starts the cluster and returns once the node is Ready and CoreDNS
// is available. It first undoes what a killed previous run left behind in
// the same state directory (Cleanup), then checks the machine (Preflight).
// On any failure it restores the host before returning. Cancelling ctx,
// during or after Start, stops the cluster as Stop does.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	t0 := time.Now()
	if opts, err = opts.withDefaults(); err != nil {
		return nil, err
	}
	lock, err := lockMachine()
	if err != nil {
		return nil, err
	}
	if err := cleanup(opts.StateDir); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("cleaning up after the previous run: %w", err)
	}
	if err := Preflight(opts); err != nil {
		_ = lock.Close()
		return nil, err
	}
	if err := resetStateDir(opts.StateDir); err != nil {
		_ = lock.Close()
		return nil, err
	}
	rec, err := newRecord(opts.StateDir, opts.BinDir)
	if err == nil {
		err = rec.save()
	}
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("recording the host before starting: %w", err)
	}
	cl := &Cluster{opts: opts, log: opts.Log, lock: lock, rec: rec, stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			if stopErr := cl.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
			c = nil
		}
	}()
	c = cl
	startCtx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := c.start(startCtx, t0); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("starting the cluster: %w", ctx.Err())
		}
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	c.timings.Total = time.Since(t0)
	c.logf("cluster ready: %s (kubeconfig %s)", c.timings, c.Kubeconfig())
	go func() {
		select {
		case <-ctx.Done():
			_ = c.Stop()
		case <-c.stopped:
		}
	}()
	return c, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.BinDir == "" || o.StateDir == "" {
		return o, errors.New("cluster.Options: BinDir and StateDir are required")
	}
	var err error
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return o, err
	}
	if o.StateDir, err = filepath.Abs(o.StateDir); err != nil {
		return o, err
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.NodeName == "" {
		o.NodeName = defaultNodeName
	}
	if o.SandboxImage == "" {
		o.SandboxImage = DefaultSandboxImage
	}
	if o.CoreDNSImage == "" {
		o.CoreDNSImage = DefaultCoreDNSImage
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	return o, nil
}

// resetStateDir empties the state directory (nothing is mounted there any
// more: Cleanup ran) and makes its layout.
func resetStateDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("emptying the state directory: %w", err)
	}
	for _, d := range []string{"logs", "pki", "kubeconfig", "etcd", "containerd", "cni/net.d", "runc", "kubelet", "pod-logs", "kubelet-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "cluster: "+format+"\n", args...)
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.opts.StateDir}, elem...)...)
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.opts.BinDir, name) }

func (c *Cluster) containerdSocket() string { return c.path("containerd", "containerd.sock") }

// shimSocketDir is where containerd's shims put their sockets. Their path
// must fit in 42 characters; a state directory too deep for that gets a
// directory in /run named after it, which Cleanup removes.
func (c *Cluster) shimSocketDir() string { return shimSocketDir(c.opts.StateDir) }

func shimSocketDir(stateDir string) string {
	if d := filepath.Join(stateDir, "s"); len(d) <= 42 {
		return d
	}
	return fmt.Sprintf("/run/mtls-shims-%x", sha256.Sum256([]byte(stateDir)))[:len("/run/mtls-shims-")+12]
}

// Kubeconfig is the path of an admin (system:masters) kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.path("kubeconfig", "admin.conf") }

// RESTConfig is the admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.cfg) }

// Client is an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Timings are the start-up times.
func (c *Cluster) Timings() Timings { return c.timings }

// NodeName is the node's name.
func (c *Cluster) NodeName() string { return c.opts.NodeName }

// StateDir is the cluster's state directory (logs in StateDir/logs).
func (c *Cluster) StateDir() string { return c.opts.StateDir }

// KubeletRootDir is the kubelet's --root-dir: pods' volumes are mounted
// under it, and the kubelet makes it a shared mount.
func (c *Cluster) KubeletRootDir() string { return c.path("kubelet") }

// ContainerdSocket is containerd's socket, for ctr --address.
func (c *Cluster) ContainerdSocket() string { return c.containerdSocket() }

// ImportImages imports image tarballs into containerd's k8s.io namespace,
// where the kubelet finds them (ctr images import --platform linux/amd64).
func (c *Cluster) ImportImages(ctx context.Context, tarballs ...string) error {
	for _, t := range tarballs {
		start := time.Now()
		out, err := runCtx(ctx, c.bin("ctr"), "--address", c.containerdSocket(), "-n", "k8s.io",
			"images", "import", "--platform", "linux/amd64", t)
		if err != nil {
			return fmt.Errorf("importing %s: %w", t, err)
		}
		c.logf("imported %s in %s: %s", filepath.Base(t), time.Since(start).Round(time.Millisecond), strings.TrimSpace(lastLine(out)))
	}
	return nil
}

// Images lists the image names containerd holds for the kubelet.
func (c *Cluster) Images(ctx context.Context) ([]string, error) {
	out, err := runCtx(ctx, c.bin("ctr"), "--address", c.containerdSocket(), "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		return nil, err
	}
	names := strings.Fields(out)
	sort.Strings(names)
	return names, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Done is closed once the cluster has stopped and the host is restored
// (after Stop, or after the context given to Start was cancelled).
func (c *Cluster) Done() <-chan struct{} { return c.stopped }

// Stop stops every process of the cluster and its containers, and
// restores the host (Cleanup). It may be called more than once and from
// any goroutine; every call returns the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		defer close(c.stopped)
		t0 := time.Now()
		c.logf("stopping")
		// Reverse start order: kube-proxy and the kubelet before the
		// control plane, so nothing restarts containers while they go.
		for i := len(c.procs) - 1; i >= 0; i-- {
			p := c.procs[i]
			switch p.name {
			case "kubelet":
				// kubelet 1.37 begins to exit on the second SIGTERM.
				p.p.Terminate(time.Second, 15*time.Second)
			case "containerd":
				killCgroups(c.rec.NewCgroups)
				p.p.Terminate(0, 10*time.Second)
			default:
				p.p.Terminate(0, 10*time.Second)
			}
		}
		c.stopErr = cleanup(c.opts.StateDir)
		if c.stopErr == nil {
			// Keep the logs; drop the images and etcd data.
			for _, d := range []string{"containerd", "etcd", "kubelet", "runc", "cni", "pod-logs"} {
				_ = os.RemoveAll(c.path(d))
			}
		}
		_ = c.lock.Close()
		if c.stopErr != nil {
			c.logf("stopped in %s; restoring the host failed: %v", time.Since(t0).Round(time.Millisecond), c.stopErr)
		} else {
			c.logf("stopped in %s; host restored", time.Since(t0).Round(time.Millisecond))
		}
	})
	return c.stopErr
}

// StartProcess runs another host process as part of the cluster (a
// NetworkPolicy agent, say): like the cluster's own components it gets bin/
// first in its PATH, its output in StateDir/logs/<name>.log, its PID in the
// host record, and it is stopped (SIGTERM, then SIGKILL after 10 s) by
// Stop before the node, or killed by the next Cleanup after a kill -9.
// Start fails if it exits while Start waits for the node.
func (c *Cluster) StartProcess(name, binary string, args ...string) error {
	return c.startProcess(name, binary, args...)
}

// startProcess starts one component with bin/ first in its PATH (containerd
// finds its shim there, kube-proxy finds nft) and records its PID.
func (c *Cluster) startProcess(name, binary string, args ...string) error {
	logPath := c.path("logs", name+".log")
	p, err := controlplane.StartCommand(controlplane.Command{
		Binary:  binary,
		Args:    args,
		Dir:     c.opts.StateDir,
		Env:     append(os.Environ(), "PATH="+c.opts.BinDir+":"+os.Getenv("PATH")),
		LogPath: logPath,
	})
	if err != nil {
		return err
	}
	c.procs = append(c.procs, &proc{name: name, log: logPath, p: p})
	return c.rec.addProcess(name, p.Pid())
}

// exited returns an error naming the first component that exited, with
// the end of its log.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		select {
		case <-p.p.Done():
			return fmt.Errorf("%s exited; its log (%s) ends:\n%s", p.name, p.log, controlplane.Tail(p.log, 25))
		default:
		}
	}
	return nil
}

// poll runs cond every interval until it reports done, a component exits,
// or ctx ends; what names the wait in the error.
func (c *Cluster) poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.exited(); err != nil {
			return false, err
		}
		// Each attempt has its own deadline: a request that hangs is
		// dropped and tried again.
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := cond(attempt)
		cancel()
		if err != nil {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		if last != nil {
			return fmt.Errorf("waiting for %s: %w (last: %w)", what, err, last)
		}
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, t0 time.Time) error {
	// Host changes, each recorded before it is made.
	c.rec.BridgeCreated = true
	if err := c.rec.save(); err != nil {
		return err
	}
	if err := createBridge(); err != nil {
		return fmt.Errorf("creating bridge %s: %w", bridgeName, err)
	}
	if err := loadNFTable(c.opts.BinDir, c.opts.StateDir); err != nil {
		return fmt.Errorf("loading nft table %s: %w", nftTable, err)
	}
	if err := allowForwarding(c.rec); err != nil {
		return fmt.Errorf("letting the node range through iptables' FORWARD chain: %w", err)
	}
	if err := c.writeFiles(); err != nil {
		return err
	}

	c.logf("starting etcd and kube-apiserver")
	if err := c.startProcess("etcd", c.bin("etcd"),
		"--data-dir="+c.path("etcd"),
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdClientPort),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdClientPort),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", etcdPeerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", etcdPeerPort),
		fmt.Sprintf("--initial-cluster=default=http://127.0.0.1:%d", etcdPeerPort),
		"--unsafe-no-fsync", "--quota-backend-bytes=1073741824", "--log-level=warn",
	); err != nil {
		return err
	}
	p := c.pki.path
	if err := c.startProcess("kube-apiserver", c.bin("kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClientPort),
		"--bind-address="+NodeIP, "--advertise-address="+NodeIP,
		fmt.Sprintf("--secure-port=%d", APIServerPort),
		"--cert-dir="+c.path("pki"),
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc."+ClusterDomain,
		"--service-account-key-file="+p("sa.pub"),
		"--service-account-signing-key-file="+p("sa.key"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+p("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false",
	); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return err
	}
	// The certificates by value, not by path: client-go caches TLS
	// transports by the config's file paths and re-reads a CA file only
	// every 5 minutes, so a cluster started again in the same process (new
	// PKI at the same paths) would be called with the old CA until then.
	// That was the 5-minute /readyz wait after a restart.
	if err := rest.LoadTLSFiles(cfg); err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	c.cfg = cfg
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if err := c.poll(ctx, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		body, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", err
	}); err != nil {
		return err
	}
	c.timings.APIServerReady = time.Since(t0)
	c.logf("kube-apiserver ready after %s", c.timings.APIServerReady.Round(time.Millisecond))

	kc := func(name string) string { return c.path("kubeconfig", name+".conf") }
	if err := c.startProcess("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig="+kc("kube-controller-manager"),
		"--leader-elect=false", "--secure-port=0",
		"--controllers=*",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p("sa.key"),
		"--root-ca-file="+p("ca.crt"),
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--cluster-cidr="+PodCIDR, "--allocate-node-cidrs=false",
		"--concurrent-deployment-syncs=2", "--concurrent-replicaset-syncs=2",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.startProcess("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig="+kc("kube-scheduler"),
		"--leader-elect=false", "--secure-port=0", "--profiling=false",
	); err != nil {
		return err
	}

	c.logf("starting containerd")
	if err := c.startProcess("containerd", c.bin("containerd"), "--config", c.path("containerd", "config.toml")); err != nil {
		return err
	}
	if err := c.poll(ctx, "containerd", func(ctx context.Context) (bool, error) {
		_, err := runCtx(ctx, c.bin("ctr"), "--address", c.containerdSocket(), "version")
		return err == nil, err
	}); err != nil {
		return err
	}
	if err := c.ImportImages(ctx, c.opts.Images...); err != nil {
		return err
	}
	images, err := c.Images(ctx)
	if err != nil {
		return err
	}
	for _, want := range []string{c.opts.SandboxImage, c.opts.CoreDNSImage} {
		if !contains(images, want) {
			return fmt.Errorf("image %s is not among the imported images %v: build it (make images, bin/images/*.tar) and pass its tarball in Options.Images", want, images)
		}
	}

	c.logf("starting kubelet and kube-proxy")
	if err := c.startProcess("kubelet", c.bin("kubelet"),
		"--config="+c.path("kubelet-config.yaml"),
		"--kubeconfig="+kc("kubelet"),
		"--root-dir="+c.KubeletRootDir(),
		"--cert-dir="+c.path("kubelet", "pki"),
		"--hostname-override="+c.opts.NodeName,
		"--node-ip="+NodeIP,
		"--v=1",
	); err != nil {
		return err
	}
	if err := c.startProcess("kube-proxy", c.bin("kube-proxy"), "--config="+c.path("kube-proxy.yaml")); err != nil {
		return err
	}
	if err := c.poll(ctx, "node "+c.opts.NodeName+" Ready", func(ctx context.Context) (bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(ctx, c.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, fmt.Errorf("node condition Ready=%s: %s", cond.Status, cond.Message)
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	c.timings.NodeReady = time.Since(t0)
	c.logf("node %s Ready after %s", c.opts.NodeName, c.timings.NodeReady.Round(time.Millisecond))

	if err := c.deployCoreDNS(ctx); err != nil {
		return err
	}
	c.timings.DNSReady = time.Since(t0)
	c.logf("CoreDNS available after %s", c.timings.DNSReady.Round(time.Millisecond))
	return nil
}

// writeFiles writes the certificates, kubeconfigs and component configs.
func (c *Cluster) writeFiles() error {
	var err error
	if c.pki, err = newPKI(c.path("pki")); err != nil {
		return err
	}
	if err := c.pki.serviceAccountKey(); err != nil {
		return err
	}
	nodeIP := net.ParseIP(NodeIP)
	ids := []identity{
		{file: "apiserver", cn: "kube-apiserver", server: true,
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + ClusterDomain},
			ips: []net.IP{nodeIP, net.ParseIP("198.19.0.1"), net.ParseIP("127.0.0.1")}},
		{file: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", groups: []string{"system:masters"}},
		{file: "admin", cn: "mtls-cluster-admin", groups: []string{"system:masters"}},
		{file: "kubelet", cn: "system:node:" + c.opts.NodeName, groups: []string{"system:nodes"}},
		{file: "kubelet-serving", cn: c.opts.NodeName, server: true, dns: []string{c.opts.NodeName}, ips: []net.IP{nodeIP}},
		{file: "kube-controller-manager", cn: "system:kube-controller-manager"},
		{file: "kube-scheduler", cn: "system:kube-scheduler"},
		{file: "kube-proxy", cn: "system:kube-proxy"},
	}
	server := fmt.Sprintf("https://%s:%d", NodeIP, APIServerPort)
	for _, id := range ids {
		if err := c.pki.issue(id); err != nil {
			return err
		}
	}
	for _, name := range []string{"admin", "kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		if err := c.pki.kubeconfig(c.path("kubeconfig", name+".conf"), server, name); err != nil {
			return err
		}
	}
	files := map[string]string{
		c.path("containerd", "config.toml"):                  c.containerdConfig(),
		c.path("cni", "net.d", "10-"+cniNetwork+".conflist"): c.cniConfig(),
		c.path("kubelet-config.yaml"):                        c.kubeletConfig(),
		c.path("kube-proxy.yaml"):                            c.proxyConfig(),
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Memory is the resident memory (VmRSS, bytes) of the cluster's processes
// by component, plus "shims" (containerd's shims) and "containers" (every
// process in the node's cgroups).
func (c *Cluster) Memory() map[string]uint64 {
	m := map[string]uint64{}
	for _, p := range c.procs {
		m[p.name] = RSS(p.p.Pid())
	}
	for _, pid := range shimPIDs(c.containerdSocket()) {
		m["shims"] += RSS(pid)
	}
	seen := map[int]bool{}
	for _, cg := range c.rec.NewCgroups {
		for _, d := range cgroupTree(cg) {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && !seen[pid] {
					seen[pid] = true
					m["containers"] += RSS(pid)
				}
			}
		}
	}
	return m
}

// RSS is a process's VmRSS in bytes (0 if gone).
func RSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb uint64
			_, _ = fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb * 1024
		}
	}
	return 0
}
