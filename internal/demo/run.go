package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
	"github.com/mtls-demo/mtls-webhook/internal/cluster"
	"github.com/mtls-demo/mtls-webhook/internal/podnet"
)

// Scenes of the seed demo.
const (
	SceneReload  = "reload"  // Case 3: hot reload (default)
	SceneRestart = "restart" // Case 2: CERT_RELOAD=false, rotation needs a rollout restart
	ScenePlain   = "plain"   // USE_MTLS=false: JSON on the wire
)

// Options configure Run.
type Options struct {
	Env          EnvOptions
	Scene        string
	Duration     time.Duration // 0: until ctx is done (Ctrl-C)
	Interval     time.Duration // between client requests
	CertDuration string
	RenewBefore  string
	Namespace    string
	// Rogue runs the rogue-client checks at the end (mTLS scenes).
	Rogue bool
	// CARollover renews the demo's root CA a third into Duration (same
	// key) and its issuing CA halfway (new key), under load.
	CARollover bool
	Out        io.Writer
	// TTY redraws a live table; otherwise plain lines.
	TTY bool
}

// Summary is the outcome of a run.
type Summary struct {
	OK, Failed    int
	Rotations     int
	FirstCert     time.Duration
	Restarts      int
	RogueAccepted int
	RogueRefused  int
	WirePlaintext bool // the backend's wire carried readable JSON
	WireInspected int  // connections recorded in front of the backend
	NodeReady     time.Duration
	MemoryBytes   uint64 // resident memory of the cluster's processes at the end
	HostRestored  bool   // the host compared equal after the stop
	HostChanged   string // what differed, when it did not
	// CARenewals are the CA renewals of --ca-rollover, in order, with when
	// each was asked for (since the load started).
	CARenewals []CARenewal
	CAAt       []time.Duration
	CAErr      error
}

// Line is the closing summary line.
func (s Summary) Line() string {
	return fmt.Sprintf("requests ok=%d failed=%d rotations=%d", s.OK, s.Failed, s.Rotations)
}

// CALines describe the CA renewals of --ca-rollover, one line each.
func (s Summary) CALines() []string {
	var out []string
	for i, r := range s.CARenewals {
		key := "kept its key"
		if r.KeyChanged() {
			key = "rotated its key"
		}
		out = append(out, fmt.Sprintf("ca rollover: %s renewed at +%s into the load, %s", r.Certificate, s.CAAt[i].Round(time.Second), key))
	}
	return out
}

// Err is non-nil when anything failed.
func (s Summary) Err() error {
	var errs []error
	if s.Failed > 0 {
		errs = append(errs, fmt.Errorf("%d request(s) failed", s.Failed))
	}
	if s.OK == 0 {
		errs = append(errs, errors.New("no request succeeded"))
	}
	if s.RogueAccepted > 0 {
		errs = append(errs, fmt.Errorf("%d rogue client(s) were accepted", s.RogueAccepted))
	}
	if s.CAErr != nil {
		errs = append(errs, fmt.Errorf("CA rollover: %w", s.CAErr))
	}
	if s.HostChanged != "" {
		errs = append(errs, fmt.Errorf("the host was not restored: %s", s.HostChanged))
	}
	return errors.Join(errs...)
}

// IsTTY reports whether w is a terminal.
func IsTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Run is `make demo`: it starts everything, installs the chart for the
// scene, runs the load client and shows the live view until Duration
// passes (or ctx ends), then checks rogue clients and returns the summary.
func Run(ctx context.Context, o Options) (sum Summary, err error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Scene == "" {
		o.Scene = SceneReload
	}
	if o.Interval == 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.Namespace == "" {
		o.Namespace = "mtls-demo"
	}
	o.Env.Progress = o.Out
	o.Env.defaults()
	// The host as it was, to compare once everything has stopped.
	before, snapErr := cluster.SnapshotHost(o.Env.BinDir)
	start := time.Now()
	fmt.Fprintf(o.Out, "mtls-demo: scene %q, certificates duration=%s renew-before=%s; state and logs in %s\n",
		o.Scene, o.CertDuration, o.RenewBefore, stateDir(o.Env))
	env, err := Start(ctx, o.Env)
	if err != nil {
		return sum, err
	}
	defer func() {
		fmt.Fprintln(o.Out, "stopping: kubelet, containerd and every container, kube-router, kube-proxy, control plane; restoring the host")
		if stopErr := env.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
			return
		}
		if snapErr != nil {
			fmt.Fprintln(o.Out, "host: not compared:", snapErr)
			return
		}
		after, aErr := cluster.SnapshotHost(o.Env.BinDir)
		switch d := after.Diff(before); {
		case aErr != nil:
			fmt.Fprintln(o.Out, "host: not compared:", aErr)
		case d != "":
			sum.HostChanged = d
			fmt.Fprintf(o.Out, "host: NOT as before:\n%s\n", d)
		default:
			sum.HostRestored = true
			fmt.Fprintln(o.Out, "host: sysctls, links, nft tables, mounts, cgroups and paths as before the demo")
		}
	}()
	t := env.Stack.Timings()
	sum.NodeReady = t.Cluster.NodeReady
	fmt.Fprintf(o.Out, "node Ready %s after start; %s\n", t.Cluster.NodeReady.Round(100*time.Millisecond), t)
	rel, err := env.Install(ctx, ReleaseOptions{Namespace: o.Namespace, Plain: o.Scene == ScenePlain, NoReload: o.Scene == SceneRestart,
		CertDuration: o.CertDuration, RenewBefore: o.RenewBefore})
	if err != nil {
		return sum, err
	}
	env.step("helm/mtls-demo installed in namespace %s: demo-ca Issuer Ready", o.Namespace)
	if sum.FirstCert, err = rel.WaitReady(ctx, 3*time.Minute); err != nil {
		return sum, err
	}
	env.step("frontend and backend Ready; first app started with its certificate mounted %s after helm install", sum.FirstCert.Round(time.Millisecond))
	tap, err := rel.Isolation(o.Out)
	if err != nil {
		return sum, err
	}
	defer func() { _ = tap.Close() }()
	d, err := rel.WaitFrontendToBackend(ctx, time.Minute)
	if err != nil {
		return sum, err
	}
	env.step("NetworkPolicy: the frontend's connections to backend-svc:8080 get through (kube-router admitted its address %s after it was Ready)", d.Round(time.Millisecond))
	if err := rel.StartClient(ctx, o.Interval); err != nil {
		return sum, err
	}
	env.step("load client running: POST https://frontend-svc.<ns>.svc:8080/submit every %s (frontend -> backend-svc)", o.Interval)
	fmt.Fprintf(o.Out, "setup took %s\n", time.Since(start).Round(100*time.Millisecond))
	kubectl := filepath.Join(o.Env.BinDir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		kubectl = "kubectl"
	}
	fmt.Fprintf(o.Out, "look around from another terminal: %s --kubeconfig %s -n %s get pods,certificaterequests -o wide\n\n",
		kubectl, env.Kubeconfig(), o.Namespace)

	v := newView(env, rel, o)
	runCtx := ctx
	if o.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	if o.CARollover && o.Scene != ScenePlain {
		v.events = make(chan string, 8)
		done := make(chan struct{})
		go func() {
			defer close(done)
			rolloverCAs(runCtx, rel, o.Duration, v.events, &sum)
		}()
		defer func() { <-done }()
	}
	v.loop(runCtx)
	v.refresh(context.Background())
	v.final()
	sum.OK, sum.Failed = v.ok, v.failed
	sum.Rotations, sum.Restarts = v.rotations, v.restarts
	_ = rel.StopClient(context.Background())

	mem := env.Stack.Memory()
	var total uint64
	for _, b := range mem {
		total += b
	}
	sum.MemoryBytes = total
	_ = tap.Close()
	conns := tap.Conns()
	sum.WireInspected = len(conns)
	for _, c := range conns {
		if strings.Contains(string(c), `"request_id"`) {
			sum.WirePlaintext = true
		}
	}
	fmt.Fprintln(o.Out)
	if sum.WirePlaintext {
		fmt.Fprintf(o.Out, "wire: %d connection(s) captured on the backend pod's eth0 (AF_PACKET, %d segments to :8080); JSON visible in plain text, e.g. %s\n", len(conns), tap.Frames(), firstJSON(conns))
	} else if len(conns) > 0 {
		fmt.Fprintf(o.Out, "wire: %d connection(s) captured on the backend pod's eth0 (AF_PACKET, %d segments to :8080); no readable JSON (first bytes % x: TLS handshake record)\n", len(conns), tap.Frames(), conns[0][:min(3, len(conns[0]))])
	}
	fmt.Fprintf(o.Out, "memory: the cluster's processes and kube-router held %s resident at the end (%s)\n", mib(total), memLine(mem))
	if o.Rogue && o.Scene != ScenePlain {
		for _, r := range rel.RogueChecks(context.Background()) {
			verdict := "REFUSED (good)"
			if r.Refused {
				sum.RogueRefused++
			} else {
				sum.RogueAccepted++
				verdict = "ACCEPTED (bad!)"
			}
			fmt.Fprintf(o.Out, "rogue client, %s: %s — %s\n", r.Name, verdict, r.Detail)
		}
	}
	return sum, nil
}

func stateDir(o EnvOptions) string {
	o.defaults()
	return o.StateDir
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// memLine lists the largest processes first.
func memLine(m map[string]uint64) string {
	type kv struct {
		k string
		v uint64
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for _, e := range all {
		parts = append(parts, e.k+" "+mib(e.v))
	}
	return strings.Join(parts, ", ")
}

// Isolation shows that the backend is a real container (its containerd ID,
// its own pid namespace, an overlay root) and starts the wire capture on
// its own interface.
func (r *Release) Isolation(out io.Writer) (*podnet.Capture, error) {
	p, ok := r.Pod("backend")
	if !ok {
		return nil, errors.New("no backend pod")
	}
	pid, err := podnet.PodProcess(p.UID, "") // its one container, not the sandbox's pause
	if err != nil {
		return nil, err
	}
	iso, err := podnet.Inspect(pid)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "backend %s: container %s, host pid %d is pid %d in its own pid namespace (%t), own network namespace (%t), root on %s\n",
		p.Name, p.ContainerID, pid, iso.PIDInNamespace, iso.OwnPIDNamespace, iso.OwnNetNamespace, iso.RootFSType)
	return podnet.CapturePod(pid, 8080, 512)
}
func firstJSON(conns [][]byte) string {
	for _, c := range conns {
		s := string(c)
		if i := strings.Index(s, "{"); i >= 0 {
			j := strings.Index(s[i:], "}")
			if j > 0 {
				return s[i : i+j+1]
			}
		}
	}
	return ""
}

// ---- the live view ----------------------------------------------------------

type appState struct {
	pod, ip  string
	serial   string
	fileSer  string
	next     time.Time
	reloads  float64
	hsFail   float64
	mismatch time.Time
}

type view struct {
	env       *Env
	rel       *Release
	o         Options
	start     time.Time
	events    chan string // --ca-rollover steps, printed by loop
	apps      map[string]*appState
	ok        int
	failed    int
	baseOK    int
	baseFail  int
	rotations int
	restarts  int
	drawn     int
	lastPlain time.Time
	clientIP  string
	// The request rate is counted from the first scrape of the client,
	// which has been sending for a while before the view starts.
	rateFrom time.Time
	rateBase int
}

var roles = []string{"frontend", "backend", "client"}

func newView(env *Env, rel *Release, o Options) *view {
	v := &view{env: env, rel: rel, o: o, start: time.Now(), apps: map[string]*appState{}}
	for _, r := range roles {
		v.apps[r] = &appState{}
	}
	return v
}

func (v *view) event(format string, args ...any) {
	v.clear()
	fmt.Fprintf(v.o.Out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (v *view) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		v.refresh(ctx)
		v.draw()
		select {
		case <-ctx.Done():
			return
		case e := <-v.events:
			v.event("%s", e)
		case <-t.C:
		}
	}
}

// rolloverCAs renews the root CA a third into the run and the issuing CA
// halfway, reporting each step on events and in sum. The root keeps its
// key (rotationPolicy Never); the issuing CA gets a new one, and the apps'
// next renewals come from it while requests keep flowing.
func rolloverCAs(ctx context.Context, rel *Release, d time.Duration, events chan<- string, sum *Summary) {
	if d <= 0 {
		d = 6 * time.Minute
	}
	start := time.Now()
	steps := []struct {
		at             time.Duration
		cert, secret   string
		what, expected string
	}{
		{d / 3, RootCACertificate, RootCASecret, "root CA", "same key: rotationPolicy Never"},
		{d / 2, IssuingCACertificate, IssuingCASecret, "issuing CA", "new key: the apps switch at their next renewal; both generations chain to the root"},
	}
	for _, st := range steps {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(st.at))):
		}
		events <- fmt.Sprintf("CA: renewing the %s (Certificate %s)", st.what, st.cert)
		asked := time.Since(start)
		r, err := rel.RenewCA(ctx, st.cert, st.secret, 2*time.Minute)
		if err != nil {
			if ctx.Err() == nil {
				sum.CAErr = err
				events <- fmt.Sprintf("CA: renewing the %s failed: %v", st.what, err)
			}
			return
		}
		sum.CARenewals = append(sum.CARenewals, r)
		sum.CAAt = append(sum.CAAt, asked)
		key := "same key"
		if r.KeyChanged() {
			key = "new key"
		}
		events <- fmt.Sprintf("CA: %s renewed, serial %s -> %s, %s (%s)", st.what, short(r.Before.SerialNumber.String()), short(r.After.SerialNumber.String()), key, st.expected)
	}
}

func (v *view) refresh(ctx context.Context) {
	for _, role := range roles {
		p, ok := v.rel.Pod(role)
		if !ok || !p.Ready {
			continue
		}
		st := v.apps[role]
		port := 8081
		if role == "client" {
			port = 9090
		}
		m, err := Scrape(ctx, p.IP, port)
		if err != nil {
			continue
		}
		if role == "client" {
			// A restarted client starts from zero: carry the old counts.
			if p.IP != v.clientIP {
				v.baseOK, v.baseFail = v.ok, v.failed
				v.clientIP = p.IP
			}
			v.ok = v.baseOK + int(m.Requests["ok"])
			v.failed = v.baseFail + int(m.Requests["http_error"]+m.Requests["transport_error"])
			if v.rateFrom.IsZero() {
				v.rateFrom, v.rateBase = time.Now(), v.ok+v.failed
			}
		}
		if st.pod != p.Name {
			if st.pod != "" {
				v.event("%s: new pod %s (%s)", role, p.Name, p.IP)
			}
			st.pod, st.ip = p.Name, p.IP
		}
		if m.Serial != "" && m.Serial != st.serial {
			if st.serial != "" {
				v.rotations++
				c, _ := v.env.MountedCert(p)
				na := ""
				if c != nil {
					na = " valid until " + c.NotAfter.Format("15:04:05")
				}
				v.event("rotation: %-8s now serving serial %s (was %s)%s", role, short(m.Serial), short(st.serial), na)
			} else if role != "client" {
				v.event("%-8s serving serial %s as %s", role, short(m.Serial), m.Identity)
			}
			st.serial = m.Serial
		}
		st.reloads, st.hsFail = m.Reloads, sum(m.HandshakeFailures)
		if c, err := v.env.MountedCert(p); err == nil {
			st.fileSer = certs.SerialHex(c)
		}
		if n, err := v.rel.NextRenewal(p); err == nil {
			st.next = n
		}
		// Case 2: the driver renewed the files but the app keeps serving
		// the certificate it loaded at start.
		if v.o.Scene == SceneRestart && role != "client" && st.fileSer != "" && st.serial != "" && st.fileSer != st.serial {
			if st.mismatch.IsZero() {
				st.mismatch = time.Now()
				v.event("%-8s files renewed to serial %s, app still serves %s (CERT_RELOAD=false)", role, short(st.fileSer), short(st.serial))
			}
		} else {
			st.mismatch = time.Time{}
		}
	}
	if v.o.Scene == SceneRestart {
		be, fe := v.apps["backend"], v.apps["frontend"]
		if !be.mismatch.IsZero() && time.Since(be.mismatch) > 3*time.Second && (fe.mismatch.IsZero() || time.Since(fe.mismatch) > 3*time.Second) {
			v.event("kubectl rollout restart deployment/frontend deployment/backend   (what Case 2 needs after every renewal)")
			if err := v.rel.RolloutRestart(ctx, "frontend", "backend"); err != nil {
				v.event("rollout restart failed: %v", err)
			}
			v.restarts++
			be.mismatch, fe.mismatch = time.Time{}, time.Time{}
			be.fileSer, fe.fileSer = "", ""
		}
	}
}

func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

func (v *view) lines() []string {
	el := time.Since(v.start)
	rate := 0.0
	if d := time.Since(v.rateFrom); !v.rateFrom.IsZero() && d > 0 {
		rate = float64(v.ok+v.failed-v.rateBase) / d.Seconds()
	}
	out := []string{fmt.Sprintf("%6s  requests ok=%d failed=%d (%.1f/s)  rotations=%d%s", el.Round(time.Second), v.ok, v.failed, rate, v.rotations,
		map[bool]string{true: fmt.Sprintf("  restarts=%d", v.restarts), false: ""}[v.o.Scene == SceneRestart])}
	for _, r := range roles {
		st := v.apps[r]
		next := "-"
		if !st.next.IsZero() {
			next = fmt.Sprintf("in %3ds (%s)", int(time.Until(st.next).Seconds()), st.next.Format("15:04:05"))
		}
		out = append(out, fmt.Sprintf("        %-8s %-28s %-12s serial %-13s renewal %-22s reloads %-3.0f refused handshakes %.0f",
			r, st.pod, st.ip, short(st.serial), next, st.reloads, st.hsFail))
	}
	return out
}

func (v *view) clear() {
	if v.o.TTY && v.drawn > 0 {
		fmt.Fprintf(v.o.Out, "\033[%dA\033[J", v.drawn)
		v.drawn = 0
	}
}

func (v *view) draw() {
	ls := v.lines()
	if v.o.TTY {
		v.clear()
		for _, l := range ls {
			fmt.Fprintln(v.o.Out, l)
		}
		v.drawn = len(ls)
		return
	}
	if time.Since(v.lastPlain) >= 10*time.Second {
		fmt.Fprintln(v.o.Out, ls[0])
		v.lastPlain = time.Now()
	}
}

func (v *view) final() {
	v.clear()
	for _, l := range v.lines() {
		fmt.Fprintln(v.o.Out, l)
	}
	v.drawn = 0
}
