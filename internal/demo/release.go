package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/internal/images"
	"github.com/mtls-demo/mtls-webhook/internal/kubeutil"
	"github.com/mtls-demo/mtls-webhook/internal/pki"
	"github.com/mtls-demo/mtls-webhook/internal/podnet"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/pkg/tlsprofile"
)

// ReleaseOptions choose how helm/mtls-demo is installed.
type ReleaseOptions struct {
	Namespace string
	// Plain sets useMTLS=false (Case 1 on Kubernetes: JSON on the wire).
	Plain bool
	// NoReload sets reload=false (Case 2: CERT_RELOAD=false).
	NoReload bool
	// CertDuration / RenewBefore go into pki.certDuration/certRenewBefore.
	CertDuration, RenewBefore string
}

// Release is helm/mtls-demo applied to one namespace.
type Release struct {
	e        *Env
	Opts     ReleaseOptions
	Deployed time.Time
	CAPEM    []byte
	CAPool   *x509.CertPool
}

// Component label of the chart's pods.
const componentLabel = "app.kubernetes.io/component"

// Install installs helm/mtls-demo into opts.Namespace as helm/README.md
// tells a user to (`helm upgrade --install mtls-demo ./helm/mtls-demo
// --namespace <ns> --create-namespace`), with the scene's values, then
// waits for the demo-ca Issuer to be Ready and reads the demo CA.
func (e *Env) Install(ctx context.Context, opts ReleaseOptions) (*Release, error) {
	if opts.Namespace == "" {
		opts.Namespace = "mtls-demo"
	}
	args := []string{"upgrade", "--install", "mtls-demo", "./helm/mtls-demo", "--namespace", opts.Namespace, "--create-namespace",
		"--set", fmt.Sprintf("useMTLS=%t", !opts.Plain), "--set", fmt.Sprintf("reload=%t", !opts.NoReload)}
	if opts.CertDuration != "" {
		args = append(args, "--set", "pki.certDuration="+opts.CertDuration)
	}
	if opts.RenewBefore != "" {
		args = append(args, "--set", "pki.certRenewBefore="+opts.RenewBefore)
	}
	r := &Release{e: e, Opts: opts}
	r.Deployed = time.Now()
	if _, err := e.Stack.Helm(ctx, args...); err != nil {
		return nil, err
	}
	// The demo CA: a Certificate signed by the self-signed ClusterIssuer,
	// then the CA Issuer reading its Secret.
	if err := e.poll(3*time.Minute, "the demo-ca Issuer to be Ready", func(ctx context.Context) (bool, error) {
		iss := &unstructured.Unstructured{}
		iss.SetAPIVersion("cert-manager.io/v1")
		iss.SetKind("Issuer")
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: "demo-ca"}, iss); err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(iss.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return nil, err
	}
	var sec corev1.Secret
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: "demo-ca-tls"}, &sec); err != nil {
		return nil, err
	}
	r.CAPEM = sec.Data["ca.crt"]
	if len(r.CAPEM) == 0 {
		r.CAPEM = sec.Data["tls.crt"]
	}
	r.CAPool = x509.NewCertPool()
	r.CAPool.AppendCertsFromPEM(r.CAPEM)
	return r, nil
}

// Namespace of the release.
func (r *Release) Namespace() string { return r.Opts.Namespace }

// PodInfo is what the demo reads of a pod from the API.
type PodInfo struct {
	Name, Namespace string
	UID             string
	IP              string
	Ready           bool
	Deleting        bool
	Created         time.Time
	// Started is when its first container started (after the kubelet
	// mounted the certificate volume).
	Started     time.Time
	Labels      map[string]string
	ContainerID string // containerd://...
}

func podInfo(p *corev1.Pod) PodInfo {
	info := PodInfo{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID), IP: p.Status.PodIP,
		Deleting: p.DeletionTimestamp != nil, Created: p.CreationTimestamp.Time, Labels: p.Labels}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			info.Ready = true
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil && (info.Started.IsZero() || cs.State.Running.StartedAt.Before(&metav1.Time{Time: info.Started})) {
			info.Started = cs.State.Running.StartedAt.Time
			info.ContainerID = cs.ContainerID
		}
	}
	return info
}

// Pod is the newest pod of role ("frontend", "backend", or "client" for
// the load client), preferring ready ones.
func (r *Release) Pod(role string) (PodInfo, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pods, err := r.e.Clientset.CoreV1().Pods(r.Opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: componentLabel + "=" + role})
	if err != nil {
		return PodInfo{}, false
	}
	var best PodInfo
	found := false
	for i := range pods.Items {
		p := podInfo(&pods.Items[i])
		if p.Deleting {
			continue
		}
		if !found || (p.Ready && !best.Ready) || (p.Ready == best.Ready && p.Created.After(best.Created)) {
			best, found = p, true
		}
	}
	return best, found
}

// WaitReady waits until the frontend and backend pods are Ready and
// returns how long after the release was installed the first app started
// with its certificate mounted (the kubelet starts a container only once
// its volumes are mounted, so this is the time to the first certificate).
func (r *Release) WaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	var first time.Duration
	err := r.e.poll(timeout, "frontend and backend pods to be Ready", func(context.Context) (bool, error) {
		first = 0
		for _, role := range []string{"backend", "frontend"} {
			p, ok := r.Pod(role)
			if !ok || !p.Ready {
				return false, nil
			}
			if d := p.Started.Sub(r.Deployed); first == 0 || d < first {
				first = d
			}
		}
		return true, nil
	})
	return first, err
}

// ClientPodName is the load client's pod.
const ClientPodName = "load-client"

// StartClient creates the load-client Pod: the demo client binary, opted
// in like the apps (its own certificate, ServiceAccount "client"), sending
// a request to frontend-svc every interval until deleted. Its /metrics is
// on <pod IP>:9090.
func (r *Release) StartClient(ctx context.Context, interval time.Duration) error {
	ns := r.Opts.Namespace
	clientImage, err := r.e.Stack.Images.Ref(images.DemoClient)
	if err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns}}
	if err := r.e.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	scheme := "https"
	if r.Opts.Plain {
		scheme = "http"
	}
	ann := map[string]string{annotations.Enable: "true", annotations.Issuer: "demo-ca", annotations.UseMTLS: strconv.FormatBool(!r.Opts.Plain)}
	if r.Opts.CertDuration != "" {
		ann[annotations.Duration] = r.Opts.CertDuration
	}
	if r.Opts.RenewBefore != "" {
		ann[annotations.RenewBefore] = r.Opts.RenewBefore
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: ClientPodName, Namespace: ns, Annotations: ann, Labels: map[string]string{componentLabel: "client"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "client",
			RestartPolicy:      corev1.RestartPolicyAlways,
			// As the chart runs the apps: the image's non-root user, whose
			// group the webhook lets read the certificate.
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: new(true), RunAsUser: new(int64(65532)), RunAsGroup: new(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:  "client",
				Image: clientImage,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				// -wait-for-frontend: kube-router admits the new pod's
				// address a moment after it starts; requests before that
				// would be refused and counted as failures.
				Args: []string{"-count=0", "-interval=" + interval.String(), "-timeout=5s", "-ops-addr=$(POD_IP):9090", "-wait-for-frontend=30s"},
				Env: []corev1.EnvVar{
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "FRONTEND_URL", Value: scheme + "://frontend-svc." + r.Opts.Namespace + ".svc:8080"},
					{Name: "CERT_RELOAD", Value: strconv.FormatBool(!r.Opts.NoReload)},
				},
			}},
		},
	}
	if err := r.e.Client.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating the load client: %w", err)
	}
	return r.e.poll(2*time.Minute, "the load client", func(ctx context.Context) (bool, error) {
		p, ok := r.Pod("client")
		if !ok || !p.Ready {
			return false, nil
		}
		_, err := Scrape(ctx, p.IP, 9090)
		return err == nil, nil
	})
}

// StopClient deletes the load-client Pod and waits until it is gone.
func (r *Release) StopClient(ctx context.Context) error {
	err := r.e.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: ClientPodName, Namespace: r.Opts.Namespace}})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return r.e.poll(time.Minute, "the load client to stop", func(ctx context.Context) (bool, error) {
		err := r.e.Client.Get(ctx, client.ObjectKey{Namespace: r.Opts.Namespace, Name: ClientPodName}, &corev1.Pod{})
		return apierrors.IsNotFound(err), nil
	})
}

// RolloutRestart does what `kubectl rollout restart deployment/<name>` does.
func (r *Release) RolloutRestart(ctx context.Context, names ...string) error {
	return kubeutil.RolloutRestart(ctx, r.e.Clientset, r.Opts.Namespace, names...)
}

// ---- certificates on disk -------------------------------------------------

// MountedCert parses tls.crt of a pod's mtls-certs volume where the
// kubelet mounted it on the node: what the app sees at its mount path.
func (e *Env) MountedCert(p PodInfo) (*x509.Certificate, error) {
	dir, err := e.volumeDir(p.UID)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, mutate.CertFile))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s/tls.crt: no PEM", dir)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// NextRenewal is when the csi-driver renews the pod's certificate: its
// expiry minus the release's renew-before, as the driver computes it.
func (r *Release) NextRenewal(p PodInfo) (time.Time, error) {
	c, err := r.e.MountedCert(p)
	if err != nil {
		return time.Time{}, err
	}
	rb, err := time.ParseDuration(r.Opts.RenewBefore)
	if err != nil {
		return time.Time{}, fmt.Errorf("renew-before %q: %w", r.Opts.RenewBefore, err)
	}
	return c.NotAfter.Add(-rb), nil
}

// ---- direct requests ------------------------------------------------------

// Post sends body to https(or http)://svc.<ns>.svc:port/path through the Service's
// proxy, with tlsCfg (nil = plain HTTP). It returns status and body.
func (r *Release) Post(ctx context.Context, svc string, port int, path, body string, tlsCfg *tls.Config) (int, []byte, error) {
	s, err := r.e.Clientset.CoreV1().Services(r.Opts.Namespace).Get(ctx, svc, metav1.GetOptions{})
	if err != nil {
		return 0, nil, err
	}
	ip := s.Spec.ClusterIP // kube-proxy's nftables rules take it from here
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		tlsCfg = tlsCfg.Clone()
		// The namespace-qualified name: certificates carry no bare
		// Service name, which any namespace could claim.
		tlsCfg.ServerName = svc + "." + r.Opts.Namespace + ".svc"
	}
	tr := &http.Transport{
		TLSClientConfig:   tlsCfg,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(ip, strconv.Itoa(port)))
		},
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(svc, strconv.Itoa(port)), Path: path}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// PodTLS is a client TLS configuration with the pod's mounted certificate
// and the demo CA.
func (r *Release) PodTLS(p PodInfo) (*tls.Config, error) {
	dir, err := r.e.volumeDir(p.UID)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, mutate.CertFile), filepath.Join(dir, mutate.KeyFile))
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: r.CAPool, Certificates: []tls.Certificate{cert}}
	tlsprofile.Apply(cfg)
	return cfg, nil
}

// RogueTLS is a client TLS configuration that trusts the demo CA (so it
// can verify the server) and presents no certificate, or, with
// impersonate set, a certificate for that SPIFFE ID from a CA of its own.
func (r *Release) RogueTLS(impersonate string) (*tls.Config, error) {
	cfg := &tls.Config{RootCAs: r.CAPool}
	tlsprofile.Apply(cfg)
	if impersonate == "" {
		return cfg, nil
	}
	ca, err := pki.NewCA("rogue CA", time.Hour)
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue(pki.LeafSpec{CommonName: "rogue", URIs: []string{impersonate},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, err
	}
	pair, err := leaf.TLSCertificate()
	if err != nil {
		return nil, err
	}
	pair.Certificate = append(pair.Certificate, ca.Cert.Raw)
	// GetClientCertificate, not Certificates: with Certificates Go sends
	// nothing when the server's acceptable CAs do not include the issuer,
	// and the rogue certificate would never reach the server.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	return cfg, nil
}

// FrontendID is the SPIFFE ID the chart's backend allows.
func (r *Release) FrontendID() string {
	return "spiffe://cluster.local/ns/" + r.Opts.Namespace + "/sa/frontend"
}

// RogueResult is one rogue-client attempt.
type RogueResult struct {
	Name    string
	Refused bool
	Detail  string
}

// RogueChecks sends /process to backend-svc as the seed's rogue pod does:
// without a certificate, and with a certificate for the frontend's own
// SPIFFE ID from another CA. Both must be refused.
func (r *Release) RogueChecks(ctx context.Context) []RogueResult {
	var out []RogueResult
	for _, c := range []struct{ name, id string }{
		{"no client certificate", ""},
		{"certificate from another CA impersonating " + r.FrontendID(), r.FrontendID()},
	} {
		cfg, err := r.RogueTLS(c.id)
		if err != nil {
			out = append(out, RogueResult{Name: c.name, Detail: err.Error()})
			continue
		}
		status, body, err := r.Post(ctx, "backend-svc", 8080, "/process", `{"request_id": "rogue"}`, cfg)
		switch {
		case err != nil:
			out = append(out, RogueResult{Name: c.name, Refused: true, Detail: shorten(err.Error())})
		case status >= 400:
			out = append(out, RogueResult{Name: c.name, Refused: true, Detail: fmt.Sprintf("HTTP %d", status)})
		default:
			out = append(out, RogueResult{Name: c.name, Refused: false, Detail: fmt.Sprintf("HTTP %d: %s", status, shorten(string(body)))})
		}
	}
	return out
}

func shorten(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// WaitFrontendToBackend waits until a TCP connection from inside the
// frontend pod reaches backend-svc:8080. The backend's NetworkPolicy admits
// the frontend by its pod address, which kube-router learns a moment after
// the pod started: requests sent before that are refused.
func (r *Release) WaitFrontendToBackend(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	fe, ok := r.Pod("frontend")
	if !ok {
		return 0, fmt.Errorf("no frontend pod in %s", r.Opts.Namespace)
	}
	pid, err := podnet.PodProcess(fe.UID, "")
	if err != nil {
		return 0, err
	}
	svc, err := r.e.Clientset.CoreV1().Services(r.Opts.Namespace).Get(ctx, "backend-svc", metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "8080")
	var last error
	err = r.e.poll(timeout, "the frontend to reach backend-svc:8080", func(context.Context) (bool, error) {
		last = podnet.DialFrom(pid, addr, time.Second)
		return last == nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w (last: %w)", err, last)
	}
	return time.Since(t0), nil
}
