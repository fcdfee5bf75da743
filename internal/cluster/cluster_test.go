//go:build cluster

package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const probeImage = "localhost/mtls-cluster-probe:test"

// repoBin is the repository's bin/ (make k8s-bins node-bins, make images).
func repoBin(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../../bin")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// testStateDir is short enough for containerd's shim sockets to live in it.
func testStateDir(t *testing.T) string { return filepath.Join(repoBin(t), "cluster-test") }

// testImages returns the tarballs Start needs (bin/images/coredns.tar and
// pause.tar from make images; a pause made of the probe while the image
// builder has not made one) and the probe image's tarball.
func testImages(t *testing.T) (startImages []string, probeTar string) {
	t.Helper()
	dir := t.TempDir()
	probe := buildProbe(t, dir)
	probeTar = filepath.Join(dir, "probe.tar")
	writeTestImage(t, probeTar, probeImage, probe, []string{"/probe"}, "65532:65532")
	images := filepath.Join(repoBin(t), "images")
	coredns := filepath.Join(images, "coredns.tar")
	if _, err := os.Stat(coredns); err != nil {
		t.Fatalf("CoreDNS image missing (%v): run make images", err)
	}
	pause := filepath.Join(images, "pause.tar")
	if _, err := os.Stat(pause); err != nil {
		pause = filepath.Join(dir, "pause.tar")
		writeTestImage(t, pause, DefaultSandboxImage, probe, []string{"/probe", "pause"}, "65535:65535")
	}
	return []string{pause, coredns}, probeTar
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func snapshot(t *testing.T) HostState {
	t.Helper()
	h, err := SnapshotHost(repoBin(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func kubectl(t *testing.T, c *Cluster, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoBin(t), "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCluster starts the cluster and checks what the demo and the e2e
// suite rely on: one Ready node (kubelet v1.37.2 on containerd 2.4.2),
// pods that are real containers, a Service reachable by its ClusterIP
// from the host and by its name from a pod, the API server reachable from
// pods, no DNS or traffic out of the machine; then that Stop restores the
// host.
func TestCluster(t *testing.T) {
	before := snapshot(t)
	startImages, probeTar := testImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	c, err := Start(ctx, Options{BinDir: repoBin(t), StateDir: testStateDir(t), Images: startImages, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop()
		}
	})
	t.Logf("start-up: %s", c.Timings())
	cs := c.Client()

	t.Run("one Ready node: kubelet v1.37.2 on containerd 2.4.2", func(t *testing.T) {
		t.Logf("kubectl get nodes -o wide:\n%s", kubectl(t, c, "get", "nodes", "-o", "wide"))
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 1 {
			t.Fatalf("%d nodes, want 1", len(nodes.Items))
		}
		n := nodes.Items[0]
		info := n.Status.NodeInfo
		if info.KubeletVersion != "v1.37.2" || info.ContainerRuntimeVersion != "containerd://2.4.2" {
			t.Errorf("kubelet %s on %s, want v1.37.2 on containerd://2.4.2", info.KubeletVersion, info.ContainerRuntimeVersion)
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			ready = ready || cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue
		}
		if !ready {
			t.Errorf("node %s is not Ready", n.Name)
		}
		if len(n.Status.Addresses) == 0 || n.Status.Addresses[0].Address != NodeIP {
			t.Errorf("node addresses %v, want InternalIP %s first", n.Status.Addresses, NodeIP)
		}
	})

	if err := c.ImportImages(ctx, probeTar); err != nil {
		t.Fatal(err)
	}
	web := deployWeb(t, ctx, cs)

	t.Run("pods are real containers: containerd ID, own pid namespace, overlay root", func(t *testing.T) {
		id := web.Status.ContainerStatuses[0].ContainerID
		t.Logf("pod %s container ID %s, IP %s", web.Name, id, web.Status.PodIP)
		if !strings.HasPrefix(id, "containerd://") {
			t.Fatalf("container ID %q is not containerd://", id)
		}
		pid := taskPID(t, c, strings.TrimPrefix(id, "containerd://"))
		hostNS, _ := os.Readlink("/proc/self/ns/pid")
		podNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		if err != nil || podNS == hostNS {
			t.Errorf("container process %d pid namespace %q (err %v), host's %q", pid, podNS, err, hostNS)
		}
		root := rootMount(t, pid)
		if !strings.HasSuffix(root, " overlay") {
			t.Errorf("container root is %q, want overlay", root)
		}
		t.Logf("container process %d: pid namespace %s (host %s), root %s", pid, podNS, hostNS, root)
		// exec goes API server -> kubelet (client certificate) -> CRI streaming.
		if out := kubectl(t, c, "exec", web.Name, "--", "/probe", "get", "http://127.0.0.1:8080/"); !strings.Contains(out, "hello from "+web.Name) {
			t.Errorf("kubectl exec: %q", out)
		}
		if !strings.HasPrefix(web.Status.PodIP, "198.18.") {
			t.Errorf("pod IP %s not in %s", web.Status.PodIP, PodCIDR)
		}
	})

	svc, err := cs.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Service reachable by its ClusterIP from the host (kube-proxy nftables)", func(t *testing.T) {
		url := fmt.Sprintf("http://%s/", svc.Spec.ClusterIP)
		var body string
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			b, err := httpGet(ctx, url)
			body = b
			return err == nil, nil
		})
		if err != nil || !strings.Contains(body, "hello from "+web.Name) {
			t.Fatalf("GET %s: %q, %v", url, body, err)
		}
		t.Logf("GET %s from the host: %s", url, strings.TrimSpace(body))
	})

	t.Run("from a pod: Service by DNS name, API server by ClusterIP, nothing outside", func(t *testing.T) {
		name := "web.default.svc." + ClusterDomain
		logs := runClient(t, ctx, cs, []string{
			"lookup", name,
			"get", "http://" + name + "/",
			"lookup", "kubernetes.default",
			"get", "http://198.19.0.1:443/",
			"lookup", "example.com",
			"get", "http://192.0.2.1/",
		})
		t.Logf("client pod:\n%s", logs)
		want := []*regexp.Regexp{
			regexp.MustCompile(`(?m)^OK lookup ` + regexp.QuoteMeta(name) + `: ` + regexp.QuoteMeta(svc.Spec.ClusterIP) + `$`),
			regexp.MustCompile(`(?m)^OK get http://` + regexp.QuoteMeta(name) + `/: hello from ` + web.Name + `$`),
			regexp.MustCompile(`(?m)^OK lookup kubernetes.default: 198.19.0.1$`),
			regexp.MustCompile(`(?m)^OK get http://198.19.0.1:443/: Client sent an HTTP request to an HTTPS server.$`),
			regexp.MustCompile(`(?m)^FAIL lookup example.com: `),
			regexp.MustCompile(`(?m)^FAIL get http://192.0.2.1/: `),
		}
		for _, re := range want {
			if !re.MatchString(logs) {
				t.Errorf("client output lacks %s", re)
			}
		}
		rules, err := nft(repoBin(t), "list", "table", "inet", nftTable)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`counter packets (\d+) bytes \d+ drop comment "pods never reach outside`).FindStringSubmatch(rules)
		if m == nil || m[1] == "0" {
			t.Errorf("the egress drop rule counted no packet:\n%s", rules)
		}
	})

	mem := c.Memory()
	var names []string
	var total uint64
	for k, v := range mem {
		names = append(names, fmt.Sprintf("%s %d MiB", k, v>>20))
		total += v
	}
	sort.Strings(names)
	t.Logf("memory (RSS): total %d MiB: %s", total>>20, strings.Join(names, ", "))

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if d := snapshot(t).Diff(before); d != "" {
		t.Errorf("host not restored after Stop:\n%s", d)
	}
}

// TestRestoreAfterKill9 kills (SIGKILL) a process running the cluster,
// checks that it left state behind, then starts a new cluster on the same
// state directory, stops it, and compares the host with before.
func TestRestoreAfterKill9(t *testing.T) {
	before := snapshot(t)
	startImages, _ := testImages(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCluster$", "-test.v")
	cmd.Env = append(os.Environ(), "MTLS_CLUSTER_HELPER="+strings.Join(startImages, ","))
	cmd.Stderr = testLog{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			t.Logf("child: %s", sc.Text())
			if strings.Contains(sc.Text(), "CLUSTER READY") && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("the child exited before its cluster was ready")
		}
	case <-time.After(12 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the child's cluster was not ready in 12 minutes")
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	time.Sleep(time.Second)
	left := snapshot(t).Diff(before)
	t.Logf("left behind by kill -9:\n%s", left)
	if !strings.Contains(left, "link added: "+bridgeName) {
		t.Errorf("kill -9 left no bridge behind: the test does not test a dirty host")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{BinDir: repoBin(t), StateDir: testStateDir(t), Images: startImages, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted: %s", c.Timings())
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := snapshot(t).Diff(before); d != "" {
		t.Errorf("host not restored after kill -9, Start and Stop:\n%s", d)
	}
}

// TestRestoreOnFailureAndCancel checks the two other ways a cluster ends:
// a Start that fails half-way (an image that was never built) restores the
// host before it returns, and cancelling Start's context (Ctrl-C in
// hack/cluster and the demo) stops the cluster and restores the host.
func TestRestoreOnFailureAndCancel(t *testing.T) {
	before := snapshot(t)
	startImages, _ := testImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	_, err := Start(ctx, Options{BinDir: repoBin(t), StateDir: testStateDir(t), Images: startImages, Log: testLog{t},
		CoreDNSImage: "localhost/never-built:0"})
	if err == nil || !strings.Contains(err.Error(), "make images") {
		t.Fatalf("Start with an image that is not there: %v, want an error naming make images", err)
	}
	if d := snapshot(t).Diff(before); d != "" {
		t.Errorf("host not restored after a failed Start:\n%s", d)
	}

	runCtx, stop := context.WithCancel(ctx)
	c, err := Start(runCtx, Options{BinDir: repoBin(t), StateDir: testStateDir(t), Images: startImages, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case <-c.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("the cluster did not stop within 2 minutes of its context being cancelled")
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := snapshot(t).Diff(before); d != "" {
		t.Errorf("host not restored after cancelling the context:\n%s", d)
	}
}

// TestHelperCluster is the process TestRestoreAfterKill9 kills: with
// MTLS_CLUSTER_HELPER set (the images), it starts a cluster, prints
// CLUSTER READY, and waits to be killed. Without it, it does nothing.
func TestHelperCluster(t *testing.T) {
	images := os.Getenv("MTLS_CLUSTER_HELPER")
	if images == "" {
		return
	}
	c, err := Start(context.Background(), Options{BinDir: repoBin(t), StateDir: testStateDir(t), Images: strings.Split(images, ","), Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	// A pod, so that the kill leaves containers, shims and mounts behind.
	ctx := context.Background()
	if _, err := c.Client().CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "pause", Image: DefaultSandboxImage, ImagePullPolicy: corev1.PullNever,
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client().CoreV1().Pods("default").Get(ctx, "sleeper", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	fmt.Println("CLUSTER READY")
	select {}
}

// TestForwardingThroughIPTables checks, in a network namespace of its own
// (the host's iptables stay untouched), that a FORWARD chain whose policy
// drops (Docker's) gets an accept for the node range, recorded, and loses
// it at cleanup. It uses the iptables of make netpol-bins.
func TestForwardingThroughIPTables(t *testing.T) {
	if os.Getenv("MTLS_CLUSTER_NETNS_HELPER") == "" {
		iptDir := filepath.Join(repoBin(t), "netfilter", "bin")
		if !isExecutable(filepath.Join(iptDir, "iptables")) {
			t.Fatalf("no %s/iptables: run make netpol-bins", iptDir)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestForwardingThroughIPTables$", "-test.v")
		cmd.Env = append(os.Environ(), "MTLS_CLUSTER_NETNS_HELPER=1", "PATH="+iptDir+":"+os.Getenv("PATH"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		out, err := cmd.CombinedOutput()
		t.Logf("in a new network namespace:\n%s", out)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(ipt, "-w", "-P", "FORWARD", "DROP"); err != nil {
		t.Fatal(err)
	}
	r := &record{StateDir: t.TempDir(), BinDir: t.TempDir()}
	if err := allowForwarding(r); err != nil {
		t.Fatal(err)
	}
	rules, _ := run(ipt, "-w", "-S", "FORWARD")
	t.Logf("with the cluster:\n%s", rules)
	if len(r.ForwardAccept) != 1 || !strings.Contains(rules, "-s 198.18.0.0/15 -d 198.18.0.0/15") {
		t.Fatalf("no accept for the node range (recorded %v):\n%s", r.ForwardAccept, rules)
	}
	saved, err := loadRecord(r.StateDir)
	if err != nil || len(saved.ForwardAccept) != 1 {
		t.Fatalf("the rule is not in the record on disk: %v %v", saved, err)
	}
	restoreForwarding(r)
	if rules, _ := run(ipt, "-w", "-S", "FORWARD"); rules != "-P FORWARD DROP\n" {
		t.Errorf("after cleanup:\n%s", rules)
	}
}

// TestPreflight checks that Preflight names what is missing, and that a
// second cluster on the machine is refused.
func TestPreflight(t *testing.T) {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", proxyHealthz))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = Preflight(Options{BinDir: t.TempDir(), StateDir: t.TempDir()})
	if err == nil {
		t.Fatal("Preflight passed with an empty bin dir and a port in use")
	}
	for _, want := range []string{
		"/kubelet: run make node-bins",
		"/containerd: run make node-bins",
		"/etcd: run make k8s-bins",
		fmt.Sprintf("port %d is in use", proxyHealthz),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Preflight error lacks %q:\n%v", want, err)
		}
	}

	lock, err := lockMachine()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	_, err = Start(context.Background(), Options{BinDir: repoBin(t), StateDir: t.TempDir()})
	if !errors.Is(err, errLocked) {
		t.Errorf("Start while another cluster holds the machine: %v, want %v", err, errLocked)
	}
}

// deployWeb runs the probe as an HTTP server behind the Service web and
// returns its Ready pod.
func deployWeb(t *testing.T, ctx context.Context, cs kubernetes.Interface) *corev1.Pod {
	t.Helper()
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: probeImage, ImagePullPolicy: corev1.PullNever,
					Args:           []string{"serve", ":8080"},
					Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt(8080)}}, PeriodSeconds: 1},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt(8080)}}},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			return false, nil
		}
		p := pods.Items[0]
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				pod = &p
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("web pod not Ready: %v", err)
	}
	return pod
}

// runClient runs the probe's check steps in a pod and returns its log,
// read through the API server (pods/log: API server to kubelet).
func runClient(t *testing.T, ctx context.Context, cs kubernetes.Interface, steps []string) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "client", Image: probeImage, ImagePullPolicy: corev1.PullNever,
				Args: append([]string{"check"}, steps...),
			}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "client", metav1.GetOptions{})
		return err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed), nil
	})
	if err != nil {
		t.Fatalf("client pod did not finish: %v", err)
	}
	b, err := cs.CoreV1().Pods("default").GetLogs("client", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("client pod logs: %v", err)
	}
	return string(b)
}

// taskPID is the host PID of a container's process (ctr tasks ls).
func taskPID(t *testing.T, c *Cluster, id string) int {
	t.Helper()
	out, err := run(c.bin("ctr"), "--address", c.ContainerdSocket(), "-n", "k8s.io", "tasks", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == id {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("container %s not in ctr tasks ls:\n%s", id, out)
	return 0
}

// rootMount is "<mount point> <fstype>" of the root mount a process sees.
func rootMount(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == "/" {
			for i, x := range f {
				if x == "-" && i+1 < len(f) {
					return "/ " + f[i+1]
				}
			}
		}
	}
	return ""
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
