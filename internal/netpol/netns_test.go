//go:build netpol

// These tests need root, bin/kube-router and bin/netfilter (make
// netpol-bins), and etcd and kube-apiserver in KUBEBUILDER_ASSETS (make
// k8s-bins): run them with `make test-netpol`. They change the host's
// filter table while they run, like the real node, and check that it is
// exactly as before afterwards.
package netpol

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
)

// Addresses: only 198.18.0.0/15. The pods' bridge has no uplink and holds
// the node's address, as cni0 holds the CNI gateway's: the ICMP errors that
// kube-router's REJECT sends are routed back over the bridge, not along the
// host's default route. The pods have no route but their /24 and the host
// does not forward (ip_forward is left alone), so nothing leaves the machine.
const (
	testNamespace = "netpol-test"
	testNode      = "netpol-test-node"
	nodeIP        = "198.18.250.1" // the Node's InternalIP and the pods' hostIP
	serverIP      = "198.18.250.10"
	clientIP      = "198.18.250.11"
	rogueIP       = "198.18.250.12"
	allowedPort   = 8080
	otherPort     = 8081
	podCIDR       = "198.18.0.0/16"
	serviceCIDR   = "198.19.0.0/16"
	greeting      = "hello from the server pod"
)

var (
	binDir     string // bin/ of the repository
	kubeconfig string // admin kubeconfig for kube-router
	clientset  *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "netpol tests need root (iptables, ipset, network namespaces)")
		return 1
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS must name the directory with etcd and kube-apiserver (make test-netpol sets it)")
		return 1
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = filepath.Join(wd, "..", "..", "bin")

	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceCIDR)
	if err := controlplane.DieWithCaller(env, assets); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting etcd and kube-apiserver:", err)
		return 1
	}
	defer func() { _ = controlplane.Stop(env) }()
	dir, err := os.MkdirTemp("", "netpol-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kube-router.kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(env, "kube-router", kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := createNodeAndPods(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "creating the Node and Pods:", err)
		return 1
	}
	return m.Run()
}

// createNodeAndPods registers what a kubelet would: a Node with an
// InternalIP, and three Running pods on it whose IPs are the addresses the
// tests give to their network namespaces.
func createNodeAndPods(ctx context.Context) error {
	node, err := clientset.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP}}
	if _, err := clientset.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if _, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	for name, ip := range map[string]string{"server": serverIP, "client": clientIP, "rogue": rogueIP} {
		c := corev1.Container{Name: "c", Image: "netpol-test.invalid/none"}
		if name == "server" {
			// Named as the demo chart's backend names its ports.
			c.Ports = []corev1.ContainerPort{
				{Name: "app", ContainerPort: allowedPort, Protocol: corev1.ProtocolTCP},
				{Name: "ops", ContainerPort: otherPort, Protocol: corev1.ProtocolTCP},
			}
		}
		pod, err := clientset.CoreV1().Pods(testNamespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{c}},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		pod.Status = corev1.PodStatus{
			Phase:   corev1.PodRunning,
			HostIP:  nodeIP,
			HostIPs: []corev1.HostIP{{IP: nodeIP}},
			PodIP:   ip,
			PodIPs:  []corev1.PodIP{{IP: ip}},
		}
		if _, err := clientset.CoreV1().Pods(testNamespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// allowClientPolicy lets only app=client reach app=server, and only on
// allowedPort.
func allowClientPolicy(name string) *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(allowedPort)
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

// demoBackendPolicy has the shape of helm/mtls-demo's backend policy: the
// named port app only from app=client, the named port ops from anyone.
func demoBackendPolicy(name string) *networkingv1.NetworkPolicy {
	app, ops := intstr.FromString("app"), intstr.FromString("ops")
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &app}},
				},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &ops}}},
			},
		},
	}
}

func createPolicy(t *testing.T, name string) {
	t.Helper()
	createPolicyObject(t, allowClientPolicy(name))
}

func createPolicyObject(t *testing.T, np *networkingv1.NetworkPolicy) {
	t.Helper()
	ctx := context.Background()
	if _, err := clientset.NetworkingV1().NetworkPolicies(testNamespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := clientset.NetworkingV1().NetworkPolicies(testNamespace).Delete(ctx, np.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting NetworkPolicy %s: %v", np.Name, err)
		}
	})
}

func options(t *testing.T, stateDir string) Options {
	return Options{
		Binary:      filepath.Join(binDir, "kube-router"),
		Kubeconfig:  kubeconfig,
		NodeName:    testNode,
		StateDir:    stateDir,
		PodCIDR:     podCIDR,
		ServiceCIDR: serviceCIDR,
		Verbosity:   1,
		Log:         testLog{t},
	}
}

// testLog sends kube-router's output to the test log, prefixed.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("kube-router: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestPolicyEnforcedWithRealPackets: with no policy both the client and the
// rogue pod reach the server; once the NetworkPolicy exists, the client
// still gets the server's greeting on the allowed port while the rogue's
// connect is refused, and so is the client on a port the policy does not
// allow. After Stop the rogue gets through again, a rule and an ipset that
// kube-router did not create are still there, and the host's iptables,
// ipsets, nft tables and sysctl are exactly as before.
func TestPolicyEnforcedWithRealPackets(t *testing.T) {
	pristine := snapshot(t)
	t.Cleanup(func() {
		if got := snapshot(t); got != pristine {
			t.Errorf("the host differs from before the test after everything was removed:\n%s", diffLines(pristine, got))
		}
	})
	pods := newPodNetwork(t)
	pods.serve(t, allowedPort)
	pods.serve(t, otherPort)
	addForeignRules(t, pristine)
	before := snapshot(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stateDir := t.TempDir()
	started := time.Now()
	fw, err := Start(ctx, options(t, stateDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-router (pid %d) synced %s after start", fw.PID(), time.Since(started).Round(time.Millisecond))
	t.Cleanup(func() { _ = fw.Stop() })

	// The rules are in nf_tables (iptables-nft), in the host's filter table.
	nftFilter := run(t, filepath.Join(binDir, "netfilter", "bin", "nft"), "list", "table", "ip", "filter")
	for _, want := range []string{"chain KUBE-ROUTER-FORWARD {", "jump KUBE-ROUTER-FORWARD", "xt match physdev"} {
		if !strings.Contains(nftFilter, want) {
			t.Fatalf("nft list table ip filter lacks %q:\n%s", want, nftFilter)
		}
	}

	// No policy yet: kube-router lets everything through.
	for _, ns := range []string{pods.client, pods.rogue} {
		if got, err := pods.connect(ns, allowedPort); err != nil || got != greeting {
			t.Fatalf("without a policy, %s -> server:%d = %q, %v; want the greeting", ns, allowedPort, got, err)
		}
	}

	createPolicy(t, "allow-client")
	applied := time.Now()
	var rogueErr error
	for deadline := time.Now().Add(90 * time.Second); ; {
		if _, rogueErr = pods.connect(pods.rogue, allowedPort); rogueErr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rogue still reaches the server 90s after the NetworkPolicy was created; filter table:\n%s",
				run(t, filepath.Join(binDir, "netfilter", "bin", "iptables-save"), "-t", "filter"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("policy enforced %s after it was created", time.Since(applied).Round(time.Millisecond))

	got, err := pods.connect(pods.client, allowedPort)
	if err != nil || got != greeting {
		t.Errorf("allowed client -> server:%d = %q, %v; want the greeting", allowedPort, got, err)
	} else {
		t.Logf("allowed client -> %s:%d: connected, read %q", serverIP, allowedPort, got)
	}
	_, rogueErr = pods.connect(pods.rogue, allowedPort)
	if !errors.Is(rogueErr, syscall.ECONNREFUSED) {
		t.Errorf("rogue -> server:%d: %v; want connection refused (kube-router REJECTs)", allowedPort, rogueErr)
	} else {
		t.Logf("rogue -> %s:%d: %v", serverIP, allowedPort, rogueErr)
	}
	_, otherErr := pods.connect(pods.client, otherPort)
	if !errors.Is(otherErr, syscall.ECONNREFUSED) {
		t.Errorf("client -> server:%d (port not in the policy): %v; want connection refused", otherPort, otherErr)
	} else {
		t.Logf("client -> %s:%d (not in the policy): %v", serverIP, otherPort, otherErr)
	}
	// The server's own listener on otherPort is up: the refusal is the firewall's.
	if got, err := pods.connect(pods.server, otherPort); err != nil || got != greeting {
		t.Errorf("server -> itself:%d = %q, %v; want the greeting", otherPort, got, err)
	}
	rejects := run(t, filepath.Join(binDir, "netfilter", "bin", "iptables-save"), "-c", "-t", "filter")
	t.Logf("kube-router's REJECT rules, with packet counters:\n%s", grepLines(rejects, "-j REJECT"))

	if err := fw.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(stateDir, stateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file still there after Stop: %v", err)
	}
	if got, err := pods.connect(pods.rogue, allowedPort); err != nil || got != greeting {
		t.Errorf("after Stop, rogue -> server:%d = %q, %v; want the greeting (no enforcement left)", allowedPort, got, err)
	}
	if after := snapshot(t); after != before {
		t.Errorf("the host differs after Stop:\n%s", diffLines(before, after))
	} else {
		t.Logf("after Stop the host's iptables, ipsets, nft tables and bridge sysctl are as before (%d lines compared)",
			strings.Count(before, "\n"))
	}
}

// TestCleanupAfterKill9: a kube-router killed with its harness (kill -9)
// leaves its rules and ipsets, and enforcement, on the host; a new Start
// removes them before it starts, and Cleanup after a second kill -9 leaves
// the host exactly as before (the filter table, absent before, is gone).
func TestCleanupAfterKill9(t *testing.T) {
	pristine := snapshot(t)
	t.Cleanup(func() {
		if got := snapshot(t); got != pristine {
			t.Errorf("the host differs from before the test after everything was removed:\n%s", diffLines(pristine, got))
		}
	})
	pods := newPodNetwork(t)
	pods.serve(t, allowedPort)
	createPolicy(t, "allow-client-kill9")
	before := snapshot(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stateDir := t.TempDir()
	fw, err := Start(ctx, options(t, stateDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Stop() })
	waitRefused(t, pods, 90*time.Second)

	kill9(t, fw)
	leftover := snapshot(t)
	if leftover == before {
		t.Fatal("kill -9 left nothing on the host: the test would prove nothing")
	}
	if !strings.Contains(leftover, "KUBE-ROUTER-FORWARD") || !strings.Contains(leftover, "KUBE-SRC-") {
		t.Fatalf("expected kube-router's chains and ipsets to outlive kill -9:\n%s", diffLines(before, leftover))
	}
	if _, err := pods.connect(pods.rogue, allowedPort); err == nil {
		t.Error("after kill -9 the rogue got through, but the rules that refuse it should still be there")
	}

	// A new start cleans up the killed run and starts again.
	fw2, err := Start(ctx, options(t, stateDir))
	if err != nil {
		t.Fatalf("Start after kill -9: %v", err)
	}
	t.Cleanup(func() { _ = fw2.Stop() })
	waitRefused(t, pods, 90*time.Second)
	if got, err := pods.connect(pods.client, allowedPort); err != nil || got != greeting {
		t.Errorf("after the restart, allowed client -> server = %q, %v", got, err)
	}

	kill9(t, fw2)
	if err := Cleanup(stateDir); err != nil {
		t.Fatalf("Cleanup after kill -9: %v", err)
	}
	if after := snapshot(t); after != before {
		t.Errorf("the host differs after Cleanup:\n%s", diffLines(before, after))
	} else {
		t.Logf("after kill -9 and Cleanup the host is as before (%d lines compared)", strings.Count(before, "\n"))
	}
	if got, err := pods.connect(pods.rogue, allowedPort); err != nil || got != greeting {
		t.Errorf("after Cleanup, rogue -> server = %q, %v; want the greeting", got, err)
	}
	if err := Cleanup(stateDir); err != nil {
		t.Errorf("a second Cleanup (nothing recorded) = %v, want nil", err)
	}
}

// TestNamedPortsLikeTheDemoChart: the demo chart's backend policy refers to
// named container ports; the rogue is refused on "app" but reaches "ops",
// which the policy opens to anyone, and the client reaches both.
func TestNamedPortsLikeTheDemoChart(t *testing.T) {
	pristine := snapshot(t)
	t.Cleanup(func() {
		if got := snapshot(t); got != pristine {
			t.Errorf("the host differs from before the test after everything was removed:\n%s", diffLines(pristine, got))
		}
	})
	pods := newPodNetwork(t)
	pods.serve(t, allowedPort)
	pods.serve(t, otherPort)
	createPolicyObject(t, demoBackendPolicy("backend-like"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fw, err := Start(ctx, options(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fw.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	waitRefused(t, pods, 90*time.Second)

	for _, c := range []struct {
		ns   string
		port int
		ok   bool
	}{
		{pods.client, allowedPort, true},
		{pods.client, otherPort, true},
		{pods.rogue, allowedPort, false},
		{pods.rogue, otherPort, true},
	} {
		got, err := pods.connect(c.ns, c.port)
		switch {
		case c.ok && (err != nil || got != greeting):
			t.Errorf("%s -> server:%d = %q, %v; want the greeting", c.ns, c.port, got, err)
		case !c.ok && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("%s -> server:%d = %q, %v; want connection refused", c.ns, c.port, got, err)
		default:
			t.Logf("%s -> %s:%d: %q %v", c.ns, serverIP, c.port, got, err)
		}
	}
}

// TestStartRefusesUnrecordedRouterObjects: an ipset with kube-router's
// name that no recorded run created (another kube-router's) makes Start
// refuse before it changes anything, and the set is left alone.
func TestStartRefusesUnrecordedRouterObjects(t *testing.T) {
	pristine := snapshot(t)
	ipset := filepath.Join(binDir, "netfilter", "bin", "ipset")
	const foreign = "KUBE-SRC-NETPOLTESTFOREIGN"
	run(t, ipset, "create", foreign, "hash:ip")
	t.Cleanup(func() {
		run(t, ipset, "destroy", foreign)
		if got := snapshot(t); got != pristine {
			t.Errorf("the host differs from before the test:\n%s", diffLines(pristine, got))
		}
	})
	before := snapshot(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stateDir := t.TempDir()
	fw, err := Start(ctx, options(t, stateDir))
	if err == nil {
		_ = fw.Stop()
		t.Fatal("Start ran next to a kube-router ipset it did not record")
	}
	if !strings.Contains(err.Error(), foreign) {
		t.Errorf("Start's error does not name %s: %v", foreign, err)
	}
	t.Logf("Start refused: %v", err)
	if _, err := os.Stat(filepath.Join(stateDir, stateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Start left a state file: %v", err)
	}
	if after := snapshot(t); after != before {
		t.Errorf("a refused Start changed the host:\n%s", diffLines(before, after))
	}
}

func waitRefused(t *testing.T, pods *podNetwork, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		_, err := pods.connect(pods.rogue, allowedPort)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rogue was not refused within %s (last: %v)", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// kill9 kills kube-router as a crash would: no SIGTERM, no cleanup.
func kill9(t *testing.T, fw *Firewall) {
	t.Helper()
	if err := syscall.Kill(fw.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fw.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("kube-router still runs 10s after SIGKILL")
	}
}

// podNetwork is three "pods": network namespaces with a veth each, on one
// bridge in the host's namespace that holds the node's address, as the CNI
// bridge plugin (isGateway) wires them.
type podNetwork struct {
	server, client, rogue string // netns names
}

func newPodNetwork(t *testing.T) *podNetwork {
	t.Helper()
	sfx := strconv.FormatInt(int64(os.Getpid()%100000), 36) + strconv.FormatInt(time.Now().UnixNano()%1296, 36)
	bridge := "npbr" + sfx
	p := &podNetwork{server: "netpol-" + sfx + "-server", client: "netpol-" + sfx + "-client", rogue: "netpol-" + sfx + "-rogue"}
	t.Cleanup(func() {
		// The host ends first: deleting one end of a veth deletes both at
		// once, while a deleted netns takes its links down asynchronously.
		for i := range 3 {
			host := fmt.Sprintf("np%s%d", sfx, i)
			if _, err := net.InterfaceByName(host); err == nil {
				if out, err := exec.Command("ip", "link", "del", host).CombinedOutput(); err != nil {
					t.Errorf("ip link del %s: %v: %s", host, err, out)
				}
			}
		}
		for _, ns := range []string{p.server, p.client, p.rogue} {
			if _, err := os.Stat("/run/netns/" + ns); err == nil {
				if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
					t.Errorf("ip netns del %s: %v: %s", ns, err, out)
				}
			}
		}
		if _, err := net.InterfaceByName(bridge); err == nil {
			if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
				t.Errorf("ip link del %s: %v: %s", bridge, err, out)
			}
		}
	})
	ip(t, "link", "add", bridge, "type", "bridge")
	ip(t, "link", "set", bridge, "addrgenmode", "none")
	ip(t, "addr", "add", nodeIP+"/24", "dev", bridge)
	ip(t, "link", "set", bridge, "up")
	for i, pod := range []struct{ ns, addr string }{{p.server, serverIP}, {p.client, clientIP}, {p.rogue, rogueIP}} {
		host := fmt.Sprintf("np%s%d", sfx, i)
		ip(t, "netns", "add", pod.ns)
		ip(t, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pod.ns)
		ip(t, "link", "set", host, "addrgenmode", "none")
		ip(t, "link", "set", host, "master", bridge, "up")
		ip(t, "-n", pod.ns, "link", "set", "lo", "up")
		ip(t, "-n", pod.ns, "addr", "add", pod.addr+"/24", "dev", "eth0")
		ip(t, "-n", pod.ns, "link", "set", "eth0", "up")
	}
	return p
}

// serve listens on serverIP:port inside the server's namespace (a socket
// keeps the namespace it was made in) and greets every connection.
func (p *podNetwork) serve(t *testing.T, port int) {
	t.Helper()
	var l net.Listener
	err := inNetns(p.server, func() error {
		var err error
		l, err = net.Listen("tcp", net.JoinHostPort(serverIP, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(greeting + "\n"))
			c.Close()
		}
	}()
}

// connect opens a TCP connection from inside netns ns to the server and
// returns the line the server sends.
func (p *podNetwork) connect(ns string, port int) (string, error) {
	var line string
	err := inNetns(ns, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(serverIP, strconv.Itoa(port)), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		line = strings.TrimSuffix(line, "\n")
		return err
	})
	return line, err
}

// inNetns runs f on a thread of its own inside the named network namespace.
// If the thread cannot return to the host's namespace it stays locked and
// dies with its goroutine, so no other goroutine ever runs in the pod's.
func inNetns(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer host.Close()
		target, err := os.Open("/run/netns/" + name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("back to the host namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// addForeignRules adds a FORWARD rule and an ipset that are not
// kube-router's (in 198.18.0.0/15, matching nothing the tests send), for
// the test to check that they survive; the test's cleanup removes them, and
// the filter table too if adding the rule created it.
func addForeignRules(t *testing.T, pristine string) {
	t.Helper()
	nf := filepath.Join(binDir, "netfilter", "bin")
	rule := []string{"FORWARD", "-s", "198.18.251.1/32", "-m", "comment", "--comment", "netpol-test: not kube-router's", "-j", "ACCEPT"}
	hadTable := strings.Contains(pristine, "table ip filter\n")
	run(t, filepath.Join(nf, "ipset"), "create", "netpol-test-foreign", "hash:ip")
	t.Cleanup(func() { run(t, filepath.Join(nf, "ipset"), "destroy", "netpol-test-foreign") })
	run(t, filepath.Join(nf, "iptables"), append([]string{"-t", "filter", "-A"}, rule...)...)
	t.Cleanup(func() {
		run(t, filepath.Join(nf, "iptables"), append([]string{"-t", "filter", "-D"}, rule...)...)
		if !hadTable {
			run(t, filepath.Join(nf, "nft"), "delete", "table", "ip", "filter")
		}
	})
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// snapshot is what the tests compare: iptables-save and ip6tables-save
// (nf_tables backend; comments and counters dropped), the nft tables, the
// ipsets, the bridge-nf-call-iptables sysctl, the links and the netns.
func snapshot(t *testing.T) string {
	t.Helper()
	nf := filepath.Join(binDir, "netfilter", "bin")
	var b strings.Builder
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		fmt.Fprintf(&b, "== %s\n", tool)
		for _, l := range strings.Split(run(t, filepath.Join(nf, tool)), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				b.WriteString(counters.ReplaceAllString(l, "[0:0]") + "\n")
			}
		}
	}
	fmt.Fprintf(&b, "== nft list tables\n%s", run(t, filepath.Join(nf, "nft"), "list", "tables"))
	sets := strings.Fields(run(t, filepath.Join(nf, "ipset"), "list", "-n"))
	sort.Strings(sets)
	fmt.Fprintf(&b, "== ipset list -n\n%s\n", strings.Join(sets, "\n"))
	sysctl, err := os.ReadFile(bridgeNFSysctl)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "== %s\n%s", bridgeNFSysctl, sysctl)
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "== links\n%s\n", strings.Join(names, "\n"))
	fmt.Fprintf(&b, "== ip netns\n%s", run(t, "ip", "netns", "list"))
	return b.String()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// diffLines lists the lines only in a (-) and only in b (+).
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
