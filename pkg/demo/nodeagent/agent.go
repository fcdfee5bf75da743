// Package nodeagent plays the kubelet (and a tiny kube-proxy) for the demo:
// it binds Pods to its Node, mounts their cert-manager CSI volumes by
// calling the real csi-driver over its unix socket, runs each container's
// program (a demo-app binary chosen by image) in a private mount namespace
// with its own loopback IP, and reports Pod status to the API server.
// Services get a loopback "cluster IP" with a TCP proxy to a ready backend
// pod, and every pod's /etc/hosts resolves Service names to it. Nothing is
// faked: the certificates come from cert-manager through the driver.
package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Config configures an Agent.
type Config struct {
	Client   kubernetes.Interface
	NodeName string
	// StateDir holds per-pod directories (CSI targets, hosts files, logs).
	// Everything mounted below it is unmounted at start and stop.
	StateDir string
	// CSISocket is the csi-driver's unix socket.
	CSISocket string
	// Binaries maps an image substring (e.g. "demo-frontend") to the
	// program run for containers whose image contains it.
	Binaries map[string]string
	// Shim is the program re-executed as pod shim (default os.Executable);
	// it must call MaybeRunShim.
	Shim string
	// ClusterDomain for Service names (default cluster.local).
	ClusterDomain string
	Log           *slog.Logger
}

// Agent is a running node agent.
type Agent struct {
	cfg Config
	csi *csiClient
	log *slog.Logger

	mu       sync.Mutex
	pods     map[types.UID]*podRunner
	services map[string]*serviceProxy // ns/name
	nextPod  int
	nextSvc  int
	svcSig   string
	taps     map[string]*Tap
}

// New checks the preconditions (root, the state directory) and cleans
// what a killed earlier run left mounted.
func New(cfg Config) (*Agent, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the node agent needs root: it mounts CSI volumes and gives every pod its own mount namespace (run as root, e.g. sudo make demo)")
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Shim == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Shim = exe
	}
	if _, err := UnmountAll(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "pods"), 0o755); err != nil {
		return nil, err
	}
	c, err := dialCSI(cfg.CSISocket)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, csi: c, log: cfg.Log, pods: map[types.UID]*podRunner{},
		services: map[string]*serviceProxy{}, taps: map[string]*Tap{}}, nil
}

// Run registers the Node and reconciles until ctx is done; then it stops
// every pod, unpublishes the volumes and unmounts what is left.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if err := a.sync(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("sync", "error", err)
		}
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-t.C:
		}
	}
}

func (a *Agent) shutdown() {
	a.mu.Lock()
	runners := make([]*podRunner, 0, len(a.pods))
	for _, r := range a.pods {
		runners = append(runners, r)
	}
	for _, s := range a.services {
		s.close()
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop(false) }()
	}
	wg.Wait()
	_ = a.csi.Close()
	_, _ = UnmountAll(a.cfg.StateDir)
}

func (a *Agent) registerNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: map[string]string{"kubernetes.io/hostname": a.cfg.NodeName}},
	}
	_, err := a.cfg.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node %s: %w", a.cfg.NodeName, err)
	}
	n, err := a.cfg.Client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "mtls-demo node agent", LastHeartbeatTime: now, LastTransitionTime: now}}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: a.cfg.NodeName}}
	_, err = a.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

func (a *Agent) sync(ctx context.Context) error {
	pods, err := a.cfg.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	svcs, err := a.cfg.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	a.syncServices(svcs.Items)
	seen := map[types.UID]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		seen[p.UID] = true
		if p.Spec.NodeName == "" {
			if p.DeletionTimestamp == nil {
				a.bind(ctx, p)
			}
			continue
		}
		if p.Spec.NodeName != a.cfg.NodeName {
			continue
		}
		a.mu.Lock()
		r := a.pods[p.UID]
		a.mu.Unlock()
		switch {
		case r == nil && p.DeletionTimestamp != nil:
			// Never started (or started by a killed run): release it.
			a.finalDelete(p)
		case r == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed):
		case r == nil:
			r = a.newRunner(p)
			a.mu.Lock()
			a.pods[p.UID] = r
			a.mu.Unlock()
			go r.run()
		case p.DeletionTimestamp != nil:
			go r.stop(true)
		default:
			r.setPod(p)
		}
	}
	a.mu.Lock()
	var gone []*podRunner
	for uid, r := range a.pods {
		if !seen[uid] {
			gone = append(gone, r)
		}
	}
	a.mu.Unlock()
	for _, r := range gone {
		go r.stop(false)
	}
	return nil
}

func (a *Agent) bind(ctx context.Context, p *corev1.Pod) {
	err := a.cfg.Client.CoreV1().Pods(p.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.cfg.NodeName},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		a.log.Warn("bind", "pod", p.Namespace+"/"+p.Name, "error", err)
	}
}

func (a *Agent) finalDelete(p *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	zero := int64(0)
	err := a.cfg.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		a.log.Warn("final delete", "pod", p.Namespace+"/"+p.Name, "error", err)
	}
}

func (a *Agent) allocPodIP() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextPod++
	n := a.nextPod + 1
	return fmt.Sprintf("127.1.%d.%d", n/250, n%250+1)
}

// PodInfo is what the agent knows about a running pod.
type PodInfo struct {
	Namespace, Name string
	UID             types.UID
	IP              string
	Ready           bool
	Labels          map[string]string
	// Volumes maps volume name to its host directory (the CSI target path,
	// which is what the containers see at their mountPath).
	Volumes map[string]string
	// VolumeIDs maps volume name to the CSI volume id.
	VolumeIDs map[string]string
	// Published is when the last volume was published (the certificate
	// arrived); Created is when the Pod object was created.
	Created, Published time.Time
	Deleting           bool
}

// Pods lists the pods the agent runs.
func (a *Agent) Pods() []PodInfo {
	a.mu.Lock()
	runners := make([]*podRunner, 0, len(a.pods))
	for _, r := range a.pods {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	out := make([]PodInfo, 0, len(runners))
	for _, r := range runners {
		out = append(out, r.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// DataRoot is the csi-driver's --data-root seen from /; volume metadata is
// at <DataRoot>/inmemfs/<volume id>/metadata.json.
func VolumeMetadataPath(dataRoot, volumeID string) string {
	return filepath.Join(dataRoot, "inmemfs", volumeID, "metadata.json")
}

// ---- pods -----------------------------------------------------------------

type podRunner struct {
	a      *Agent
	dir    string
	ip     string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	pod       *corev1.Pod
	ready     bool
	volumes   map[string]string
	volIDs    map[string]string
	published time.Time
	deleting  bool
	stopOnce  sync.Once
	procs     map[string]*exec.Cmd
	statuses  map[string]*corev1.ContainerStatus
	message   string
}

func (a *Agent) newRunner(p *corev1.Pod) *podRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &podRunner{a: a, pod: p.DeepCopy(), ip: a.allocPodIP(), ctx: ctx, cancel: cancel, done: make(chan struct{}),
		dir:     filepath.Join(a.cfg.StateDir, "pods", p.Namespace+"_"+p.Name+"_"+string(p.UID)[:8]),
		volumes: map[string]string{}, volIDs: map[string]string{}, procs: map[string]*exec.Cmd{}, statuses: map[string]*corev1.ContainerStatus{}}
}

func (r *podRunner) setPod(p *corev1.Pod) {
	r.mu.Lock()
	r.pod = p.DeepCopy()
	r.mu.Unlock()
}

func (r *podRunner) info() PodInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	vols, ids := map[string]string{}, map[string]string{}
	for k, v := range r.volumes {
		vols[k] = v
	}
	for k, v := range r.volIDs {
		ids[k] = v
	}
	return PodInfo{Namespace: r.pod.Namespace, Name: r.pod.Name, UID: r.pod.UID, IP: r.ip, Ready: r.ready && !r.deleting,
		Labels: r.pod.Labels, Volumes: vols, VolumeIDs: ids, Created: r.pod.CreationTimestamp.Time, Published: r.published, Deleting: r.deleting}
}

func (r *podRunner) key() string { return r.pod.Namespace + "/" + r.pod.Name }

func (r *podRunner) run() {
	defer close(r.done)
	log := r.a.log.With("pod", r.key())
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		r.fail("CreateContainerConfigError", err.Error())
		return
	}
	r.setMessage("ContainerCreating", "mounting volumes")
	r.report()
	// Volumes: the CSI driver's, plus emptyDirs.
	for _, v := range r.pod.Spec.Volumes {
		switch {
		case v.CSI != nil && v.CSI.Driver == CSIDriverName:
			target := filepath.Join(r.dir, "volumes", v.Name)
			start := time.Now()
			for attempt := 1; ; attempt++ {
				ctx, cancel := context.WithTimeout(r.ctx, 60*time.Second)
				err := r.a.csi.publish(ctx, r.pod, v, target)
				cancel()
				if err == nil {
					break
				}
				if r.ctx.Err() != nil {
					return
				}
				log.Warn("NodePublishVolume failed, retrying", "volume", v.Name, "attempt", attempt, "error", err)
				r.setMessage("ContainerCreating", fmt.Sprintf("MountVolume.SetUp failed for volume %q: %v", v.Name, err))
				r.report()
				select {
				case <-r.ctx.Done():
					return
				case <-time.After(time.Duration(min(attempt, 5)) * time.Second):
				}
			}
			r.mu.Lock()
			r.volumes[v.Name] = target
			r.volIDs[v.Name] = volumeID(r.pod, v.Name)
			r.published = time.Now()
			r.mu.Unlock()
			log.Info("volume published", "volume", v.Name, "took", time.Since(start))
		case v.EmptyDir != nil:
			d := filepath.Join(r.dir, "empty", v.Name)
			_ = os.MkdirAll(d, 0o777)
			r.mu.Lock()
			r.volumes[v.Name] = d
			r.mu.Unlock()
		}
	}
	if err := r.a.writeHosts(r); err != nil {
		r.fail("CreateContainerConfigError", err.Error())
		return
	}
	r.setMessage("", "")
	var wg sync.WaitGroup
	for _, c := range r.pod.Spec.Containers {
		wg.Add(1)
		go func() { defer wg.Done(); r.runContainer(c) }()
	}
	go r.probeLoop()
	wg.Wait()
	r.report()
}

func (r *podRunner) setMessage(reason, msg string) {
	r.mu.Lock()
	r.message = strings.TrimSpace(reason + ": " + msg)
	if reason == "" {
		r.message = ""
	}
	r.mu.Unlock()
}

func (r *podRunner) fail(reason, msg string) {
	r.a.log.Warn("pod failed", "pod", r.key(), "reason", reason, "message", msg)
	r.setMessage(reason, msg)
	r.report()
}

func (r *podRunner) binaryFor(image string) string {
	best := ""
	for sub := range r.a.cfg.Binaries {
		if strings.Contains(image, sub) && len(sub) > len(best) {
			best = sub
		}
	}
	if best == "" {
		return ""
	}
	return r.a.cfg.Binaries[best]
}

func (r *podRunner) runContainer(c corev1.Container) {
	log := r.a.log.With("pod", r.key(), "container", c.Name)
	bin := r.binaryFor(c.Image)
	if bin == "" {
		r.mu.Lock()
		r.statuses[c.Name] = &corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull",
				Message: fmt.Sprintf("no demo binary for image %q (the node agent runs images containing %s)", c.Image, strings.Join(r.knownImages(), ", "))}}}
		r.mu.Unlock()
		log.Warn("no binary for image", "image", c.Image)
		r.report()
		return
	}
	env := r.containerEnv(c)
	argv := []string{bin}
	argv = append(argv, expandAll(c.Args, env)...)
	var mounts []Mount
	r.mu.Lock()
	for _, vm := range c.VolumeMounts {
		src, ok := r.volumes[vm.Name]
		if !ok {
			continue
		}
		if vm.SubPath != "" {
			src = filepath.Join(src, vm.SubPath)
		}
		mounts = append(mounts, Mount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	r.mu.Unlock()
	mounts = append(mounts, Mount{Source: filepath.Join(r.dir, "hosts"), Target: "/etc/hosts", ReadOnly: true, File: true})
	specPath := filepath.Join(r.dir, c.Name+".shim.json")
	r.mu.Lock()
	user := containerUser(r.pod, c)
	r.mu.Unlock()
	spec := ShimSpec{Mounts: mounts, Argv: argv, User: user}
	if sc := c.SecurityContext; sc != nil {
		spec.ReadOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		spec.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		r.fail("CreateContainerError", err.Error())
		return
	}
	logPath := filepath.Join(r.dir, c.Name+".log")
	restarts := int32(0)
	for {
		lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			r.fail("CreateContainerError", err.Error())
			return
		}
		cmd := exec.Command(r.a.cfg.Shim, ShimCommand, specPath)
		cmd.Env = env
		cmd.Dir = "/"
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Setpgid: true, Pdeathsig: syscall.SIGKILL}
		r.mu.Lock()
		if r.ctx.Err() != nil {
			r.mu.Unlock()
			_ = lf.Close()
			return
		}
		err = cmd.Start()
		started := metav1.Now()
		if err == nil {
			r.procs[c.Name] = cmd
			st := &corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "file://" + bin,
				ContainerID: "mtls-demo://" + strconv.Itoa(cmd.Process.Pid), RestartCount: restarts, Started: ptr(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}
			if prev := r.statuses[c.Name]; prev != nil && prev.State.Terminated != nil {
				st.LastTerminationState = corev1.ContainerState{Terminated: prev.State.Terminated}
			}
			r.statuses[c.Name] = st
		}
		r.mu.Unlock()
		if err != nil {
			_ = lf.Close()
			r.fail("RunContainerError", err.Error())
			return
		}
		log.Info("container started", "pid", cmd.Process.Pid, "binary", bin, "log", logPath)
		r.report()
		werr := cmd.Wait()
		_ = lf.Close()
		code := int32(0)
		if ee := (&exec.ExitError{}); errors.As(werr, &ee) {
			code = int32(ee.ExitCode())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int32(ws.Signal()) // what a container runtime reports
			}
		}
		r.mu.Lock()
		delete(r.procs, c.Name)
		r.ready = false
		st := r.statuses[c.Name]
		st.Ready, st.Started = false, ptr(false)
		st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, StartedAt: started, FinishedAt: metav1.Now(),
			Reason: map[bool]string{true: "Completed", false: "Error"}[code == 0]}}
		stopping := r.ctx.Err() != nil
		r.mu.Unlock()
		if stopping {
			return
		}
		log.Warn("container exited", "code", code, "log", logPath)
		r.report()
		pol := r.pod.Spec.RestartPolicy
		if pol == corev1.RestartPolicyNever || (pol == corev1.RestartPolicyOnFailure && code == 0) {
			return
		}
		restarts++
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(time.Duration(min(restarts, 10)) * time.Second):
		}
	}
}

func (r *podRunner) knownImages() []string {
	var out []string
	for k := range r.a.cfg.Binaries {
		out = append(out, strconv.Quote(k))
	}
	sort.Strings(out)
	return out
}

// containerEnv resolves value and simple fieldRef variables, in order, with
// $(VAR) expansion of earlier ones, like the kubelet. LISTEN_HOST defaults to
// the pod IP so that every app binds its own loopback address.
func (r *podRunner) containerEnv(c corev1.Container) []string {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	set("HOSTNAME", r.pod.Name)
	set("HOME", "/root")
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expand(e.Value, vals))
		case e.ValueFrom.FieldRef != nil:
			set(e.Name, r.field(e.ValueFrom.FieldRef.FieldPath))
		}
	}
	if _, ok := vals["LISTEN_HOST"]; !ok {
		set("LISTEN_HOST", r.ip)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out
}

func (r *podRunner) field(path string) string {
	p := r.pod
	switch path {
	case "metadata.name":
		return p.Name
	case "metadata.namespace":
		return p.Namespace
	case "metadata.uid":
		return string(p.UID)
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName
	case "spec.nodeName":
		return r.a.cfg.NodeName
	case "status.podIP":
		return r.ip
	case "status.hostIP":
		return "127.0.0.1"
	}
	if strings.HasPrefix(path, "metadata.labels['") {
		return p.Labels[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.labels['"), "']")]
	}
	if strings.HasPrefix(path, "metadata.annotations['") {
		return p.Annotations[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.annotations['"), "']")]
	}
	return ""
}

func expand(s string, vals map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '(' {
			if j := strings.IndexByte(s[i:], ')'); j > 0 {
				name := s[i+2 : i+j]
				if v, ok := vals[name]; ok {
					b.WriteString(v)
					i += j
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func expandAll(args []string, env []string) []string {
	vals := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, vals)
	}
	return out
}

// probeLoop runs the readiness probes (containers without one are ready
// once running) and the liveness probes, which kill a container after
// failureThreshold failures in a row so that its restart policy restarts
// it, as a kubelet does. Only httpGet probes are understood.
func (r *podRunner) probeLoop() {
	client := &http.Client{Timeout: time.Second}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	live := map[string]*liveness{}
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		allReady := true
		r.mu.Lock()
		conts := r.pod.Spec.Containers
		r.mu.Unlock()
		for _, c := range conts {
			ok := r.containerReady(client, c)
			r.mu.Lock()
			if st := r.statuses[c.Name]; st != nil {
				st.Ready = ok
			}
			r.mu.Unlock()
			allReady = allReady && ok
			if live[c.Name] == nil {
				live[c.Name] = &liveness{}
			}
			r.checkLiveness(client, c, live[c.Name])
		}
		r.mu.Lock()
		changed := r.ready != allReady
		r.ready = allReady
		r.mu.Unlock()
		if changed {
			r.a.log.Info("readiness", "pod", r.key(), "ready", allReady)
			r.report()
		}
	}
}

// liveness is one container's liveness probe state.
type liveness struct {
	pid      int // the process the state belongs to
	next     time.Time
	failures int32
}

func (r *podRunner) checkLiveness(client *http.Client, c corev1.Container, l *liveness) {
	p := c.LivenessProbe
	if p == nil || p.HTTPGet == nil {
		return
	}
	r.mu.Lock()
	cmd, running := r.procs[c.Name]
	var started time.Time
	if st := r.statuses[c.Name]; st != nil && st.State.Running != nil {
		started = st.State.Running.StartedAt.Time
	}
	r.mu.Unlock()
	if !running || cmd.Process == nil {
		return
	}
	now := time.Now()
	if l.pid != cmd.Process.Pid { // a new process starts with a clean slate
		*l = liveness{pid: cmd.Process.Pid, next: started.Add(time.Duration(p.InitialDelaySeconds) * time.Second)}
	}
	if now.Before(l.next) {
		return
	}
	l.next = now.Add(time.Duration(max(p.PeriodSeconds, 1)) * time.Second)
	if r.probe(client, c, p) {
		l.failures = 0
		return
	}
	l.failures++
	if l.failures < max(p.FailureThreshold, 1) {
		return
	}
	r.a.log.Warn("liveness probe failed: killing the container", "pod", r.key(), "container", c.Name, "failures", l.failures)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	l.failures = 0
}

func (r *podRunner) containerReady(client *http.Client, c corev1.Container) bool {
	r.mu.Lock()
	_, running := r.procs[c.Name]
	r.mu.Unlock()
	if !running {
		return false
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return true
	}
	return r.probe(client, c, c.ReadinessProbe)
}

// probe runs an httpGet probe against the pod's address.
func (r *podRunner) probe(client *http.Client, c corev1.Container, p *corev1.Probe) bool {
	port := resolvePort(c, p.HTTPGet.Port)
	if port == 0 {
		return false
	}
	scheme := "http"
	if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	resp, err := client.Get(fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(r.ip, strconv.Itoa(port)), p.HTTPGet.Path))
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

// report writes the pod status.
func (r *podRunner) report() {
	r.mu.Lock()
	if r.deleting {
		r.mu.Unlock()
		return
	}
	pod := r.pod
	st := corev1.PodStatus{HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}}}
	if pod.Status.StartTime != nil {
		st.StartTime = pod.Status.StartTime
	} else {
		st.StartTime = ptr(metav1.Now())
	}
	running, waiting, terminated, failed := 0, 0, 0, 0
	for _, c := range pod.Spec.Containers {
		cs := r.statuses[c.Name]
		if cs == nil {
			cs = &corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating", Message: r.message}}}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, *cs.DeepCopy())
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			terminated++
			if cs.State.Terminated.ExitCode != 0 {
				failed++
			}
		default:
			waiting++
		}
	}
	if running > 0 || terminated > 0 {
		st.PodIP = r.ip
		st.PodIPs = []corev1.PodIP{{IP: r.ip}}
	}
	never := pod.Spec.RestartPolicy == corev1.RestartPolicyNever
	switch {
	case never && terminated == len(pod.Spec.Containers) && failed == 0:
		st.Phase = corev1.PodSucceeded
	case never && terminated+waiting == len(pod.Spec.Containers) && (failed > 0 || (waiting > 0 && r.message == "" && r.statusesComplete())):
		st.Phase = corev1.PodFailed
	case running > 0 || terminated > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	now := metav1.Now()
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now, Reason: reason}
	}
	ready := r.ready && running == len(pod.Spec.Containers)
	reason := ""
	if !ready {
		reason = "ContainersNotReady"
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true, ""),
		cond(corev1.PodInitialized, true, ""),
		cond(corev1.ContainersReady, ready, reason),
		cond(corev1.PodReady, ready, reason),
	}
	if r.message != "" {
		st.Message = r.message
	}
	ns, name, uid := pod.Namespace, pod.Name, pod.UID
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := r.a.cfg.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != uid {
			return nil
		}
		// Keep transition times of unchanged conditions.
		for i := range st.Conditions {
			for _, old := range cur.Status.Conditions {
				if old.Type == st.Conditions[i].Type && old.Status == st.Conditions[i].Status {
					st.Conditions[i].LastTransitionTime = old.LastTransitionTime
				}
			}
		}
		cur.Status = st
		_, err = r.a.cfg.Client.CoreV1().Pods(ns).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		r.a.log.Warn("status update", "pod", ns+"/"+name, "error", err)
	}
}

func (r *podRunner) statusesComplete() bool {
	for _, c := range r.pod.Spec.Containers {
		if r.statuses[c.Name] == nil {
			return false
		}
	}
	return true
}

// stop kills the containers (TERM, then KILL after 5 s), unpublishes the
// volumes and, for a pod being deleted, removes the Pod object.
func (r *podRunner) stop(deleteObject bool) {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.deleting = true
		pod := r.pod
		r.mu.Unlock()
		r.a.log.Info("stopping pod", "pod", r.key())
		r.cancel()
		r.mu.Lock()
		procs := make([]*exec.Cmd, 0, len(r.procs))
		for _, p := range r.procs {
			procs = append(procs, p)
		}
		r.mu.Unlock()
		for _, p := range procs {
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		}
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			for _, p := range procs {
				_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			}
			<-r.done
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r.mu.Lock()
		for name, id := range r.volIDs {
			if err := r.a.csi.unpublish(ctx, id, r.volumes[name]); err != nil {
				r.a.log.Warn("NodeUnpublishVolume", "pod", r.key(), "volume", name, "error", err)
			}
		}
		r.mu.Unlock()
		cancel()
		_, _ = UnmountAll(r.dir)
		r.a.mu.Lock()
		delete(r.a.pods, pod.UID)
		r.a.mu.Unlock()
		if deleteObject {
			r.a.finalDelete(pod)
		}
		r.a.refreshHosts()
	})
}

// ---- services, hosts ------------------------------------------------------

type serviceProxy struct {
	ns, name string
	ip       string
	svc      *corev1.Service
	lns      []net.Listener
	mu       sync.Mutex
}

func (s *serviceProxy) close() {
	for _, l := range s.lns {
		_ = l.Close()
	}
}

// ServiceIP is the loopback "cluster IP" of a Service ("" if unknown).
func (a *Agent) ServiceIP(ns, name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.services[ns+"/"+name]; s != nil {
		return s.ip
	}
	return ""
}

// TapService records the bytes clients send to Service ns/name from now on
// (what a packet capture in front of the backend would show).
func (a *Agent) TapService(ns, name string) *Tap {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := &Tap{}
	a.taps[ns+"/"+name] = t
	return t
}

// Tap holds the first bytes of each connection through a Service.
type Tap struct {
	mu    sync.Mutex
	conns [][]byte
}

// Conns returns what each connection sent (up to 64 KiB each, 200 conns).
func (t *Tap) Conns() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]byte, len(t.conns))
	for i, c := range t.conns {
		out[i] = append([]byte(nil), c...)
	}
	return out
}

type tapWriter struct {
	t *Tap
	i int
}

func (w *tapWriter) Write(p []byte) (int, error) {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	if w.i >= 0 && len(w.t.conns[w.i]) < 64<<10 {
		w.t.conns[w.i] = append(w.t.conns[w.i], p[:min(len(p), 64<<10-len(w.t.conns[w.i]))]...)
	}
	return len(p), nil
}

func (a *Agent) syncServices(svcs []corev1.Service) {
	a.mu.Lock()
	seen := map[string]bool{}
	var sig []string
	for i := range svcs {
		s := &svcs[i]
		if s.Namespace == "default" && s.Name == "kubernetes" {
			continue
		}
		key := s.Namespace + "/" + s.Name
		seen[key] = true
		sig = append(sig, key+"@"+s.ResourceVersion)
		if p := a.services[key]; p != nil {
			p.mu.Lock()
			p.svc = s.DeepCopy()
			p.mu.Unlock()
			continue
		}
		a.nextSvc++
		p := &serviceProxy{ns: s.Namespace, name: s.Name, svc: s.DeepCopy(),
			ip: fmt.Sprintf("127.100.%d.%d", a.nextSvc/250, a.nextSvc%250+1)}
		for _, port := range s.Spec.Ports {
			if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
				continue
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(int(port.Port))))
			if err != nil {
				a.log.Warn("service proxy", "service", key, "error", err)
				continue
			}
			p.lns = append(p.lns, ln)
			go a.serveProxy(p, port, ln)
		}
		a.services[key] = p
	}
	for key, p := range a.services {
		if !seen[key] {
			p.close()
			delete(a.services, key)
		}
	}
	sort.Strings(sig)
	newSig := strings.Join(sig, ",")
	changed := newSig != a.svcSig
	a.svcSig = newSig
	a.mu.Unlock()
	if changed {
		a.refreshHosts()
	}
}

func (a *Agent) serveProxy(p *serviceProxy, port corev1.ServicePort, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go a.proxyConn(p, port, conn)
	}
}

func (a *Agent) proxyConn(p *serviceProxy, port corev1.ServicePort, in net.Conn) {
	defer func() { _ = in.Close() }()
	addr := a.endpoint(p, port)
	if addr == "" {
		a.log.Warn("service has no ready endpoint", "service", p.ns+"/"+p.name)
		return
	}
	out, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	var src io.Reader = in
	a.mu.Lock()
	if t := a.taps[p.ns+"/"+p.name]; t != nil {
		t.mu.Lock()
		i := -1
		if len(t.conns) < 200 {
			t.conns = append(t.conns, nil)
			i = len(t.conns) - 1
		}
		t.mu.Unlock()
		src = io.TeeReader(in, &tapWriter{t: t, i: i})
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, src)
		if tc, ok := out.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(in, out)
	if tc, ok := in.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	<-done
}

// endpoint picks the newest ready pod selected by the Service.
func (a *Agent) endpoint(p *serviceProxy, port corev1.ServicePort) string {
	p.mu.Lock()
	sel := labels.SelectorFromSet(p.svc.Spec.Selector)
	p.mu.Unlock()
	a.mu.Lock()
	var best *podRunner
	var bestInfo PodInfo
	for _, r := range a.pods {
		info := r.info()
		if info.Namespace != p.ns || !info.Ready || !sel.Matches(labels.Set(info.Labels)) {
			continue
		}
		if best == nil || info.Created.After(bestInfo.Created) {
			best, bestInfo = r, info
		}
	}
	a.mu.Unlock()
	if best == nil {
		return ""
	}
	target := port.TargetPort
	n := target.IntValue()
	if target.Type == intstr.String {
		n = 0
		for _, c := range best.pod.Spec.Containers {
			if v := resolvePort(c, target); v != 0 {
				n = v
			}
		}
	}
	if n == 0 {
		n = int(port.Port)
	}
	return net.JoinHostPort(bestInfo.IP, strconv.Itoa(n))
}

// writeHosts writes the pod's /etc/hosts: itself, then every Service (short
// names only for its own namespace). It rewrites in place so that the bind
// mount in the pod's namespace sees updates.
func (a *Agent) writeHosts(r *podRunner) error {
	var b strings.Builder
	b.WriteString("# written by the mtls-demo node agent\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
	fmt.Fprintf(&b, "%s\t%s\n", r.ip, r.pod.Name)
	a.mu.Lock()
	keys := make([]string, 0, len(a.services))
	for k := range a.services {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := a.services[k]
		names := []string{s.name + "." + s.ns, s.name + "." + s.ns + ".svc", s.name + "." + s.ns + ".svc." + a.cfg.ClusterDomain}
		if s.ns == r.pod.Namespace {
			names = append([]string{s.name}, names...)
		}
		fmt.Fprintf(&b, "%s\t%s\n", s.ip, strings.Join(names, " "))
	}
	a.mu.Unlock()
	path := filepath.Join(r.dir, "hosts")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(b.String())
	return errors.Join(err, f.Close())
}

func (a *Agent) refreshHosts() {
	a.mu.Lock()
	runners := make([]*podRunner, 0, len(a.pods))
	for _, r := range a.pods {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	for _, r := range runners {
		if _, err := os.Stat(filepath.Join(r.dir, "hosts")); err == nil {
			_ = a.writeHosts(r)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// ImageUser and ImageGroup are the user and group the demo images run as
// (distroless nonroot, 65532:65532): what a container runs as when its
// securityContext does not say.
const (
	ImageUser  = 65532
	ImageGroup = mutate.DemoImageGroup
)

// containerUser is who a kubelet would run c as: runAsUser and runAsGroup
// from the container, else the pod, else the image's USER; plus the pod's
// fsGroup and supplementalGroups as supplementary groups.
func containerUser(pod *corev1.Pod, c corev1.Container) *User {
	u := &User{UID: ImageUser, GID: uint32(ImageGroup)}
	psc := pod.Spec.SecurityContext
	if psc != nil {
		if psc.RunAsUser != nil {
			u.UID = uint32(*psc.RunAsUser)
		}
		if psc.RunAsGroup != nil {
			u.GID = uint32(*psc.RunAsGroup)
		}
		if psc.FSGroup != nil {
			u.Groups = append(u.Groups, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			u.Groups = append(u.Groups, uint32(g))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			u.UID = uint32(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			u.GID = uint32(*sc.RunAsGroup)
		}
	}
	return u
}
