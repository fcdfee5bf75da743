//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/mtls-demo/mtls-webhook/internal/kubeutil"
)

// Case 3 as installed by hack/kind-e2e.sh: both demo pods were injected by
// the webhook, run the demo images it swapped in, and serve a certificate
// from the demo CA carrying their SPIFFE identity.
func TestInjectedPodsGetCertificates(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	ns := suite.demoNamespace
	dumpOnFailure(t, ns)
	for _, app := range []string{"backend", "frontend"} {
		pod := readyPod(ctx, t, ns, app)
		if s := pod.Annotations["mtls.demo/status"]; !strings.HasPrefix(s, "injected") {
			t.Errorf("%s: mtls.demo/status = %q, want injected-<hash>", pod.Name, s)
		}
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == "mtls-certs" {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.CSI == nil || vol.CSI.Driver != "csi.cert-manager.io" || !ptr.Deref(vol.CSI.ReadOnly, false) {
			t.Errorf("%s: want a read-only csi.cert-manager.io volume mtls-certs, got %+v", pod.Name, vol)
		} else if g := vol.CSI.VolumeAttributes["csi.cert-manager.io/fs-group"]; g != "65532" {
			// The apps run as 65532:65532 and can read tls.key only through
			// this group (the driver writes it 0440, root and the group).
			t.Errorf("%s: csi.cert-manager.io/fs-group = %q, want 65532 (the chart's runAsGroup)", pod.Name, g)
		}
		c := pod.Spec.Containers[0]
		if c.Image != image(app) {
			t.Errorf("%s: image %q, want the webhook's --%s-image %q", pod.Name, c.Image, app, image(app))
		}
		envs := map[string]string{}
		for _, e := range c.Env {
			envs[e.Name] = e.Value
		}
		for k, v := range map[string]string{"USE_MTLS": "true", "MTLS_CERT_FILE": "/var/run/mtls/tls.crt",
			"MTLS_KEY_FILE": "/var/run/mtls/tls.key", "MTLS_CA_FILE": "/var/run/mtls/ca.crt"} {
			if envs[k] != v {
				t.Errorf("%s: env %s = %q, want %q", pod.Name, k, envs[k], v)
			}
		}
		// The app is Ready only with its certificate loaded; its metrics say
		// which identity and expiry it serves.
		m := metrics(ctx, t, pod)
		if wantID := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", ns, app); m.Identity != wantID {
			t.Errorf("%s: /metrics serves identity %q, want %s", pod.Name, m.Identity, wantID)
		}
		if !m.LeafNotAfter.After(time.Now()) {
			t.Errorf("%s: leaf expiry %v, want a time in the future", pod.Name, m.LeafNotAfter)
		}
	}
}

// Case 3, step "run the client": the demo client (with its own injected
// certificate) calls frontend-svc over mTLS, and the frontend calls
// backend-svc over mTLS; every request must succeed and the backend must
// name the frontend as its caller.
func TestFrontendToBackendMTLS(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	ns := suite.demoNamespace
	dumpOnFailure(t, ns)
	res := runPod(ctx, t, clientPod(ns, "e2e-client", "https://frontend-svc."+ns+".svc:8080", 10, true))
	if res.exitCode != 0 {
		t.Fatalf("client exited %d:\n%s", res.exitCode, res.logs)
	}
	want := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/frontend", ns)
	if !strings.Contains(res.logs, want) {
		t.Errorf("client output does not show the backend seeing caller %s:\n%s", want, res.logs)
	}
}

// The seed's appendix: a pod without a certificate is refused in the TLS
// handshake, even with server verification off (curl -k). frontend-svc is
// open to every pod at the network level (the chart's NetworkPolicy), so the
// refusal there can only come from mTLS; backend-svc is additionally closed
// by NetworkPolicy, so there any failure counts. A control pod with an
// injected certificate, the same tool and the same URL succeeds.
func TestRoguePodRefused(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	ns := suite.demoNamespace
	dumpOnFailure(t, ns)
	// Exit codes as curl's: 35 handshake failed, 56 receive failure (TLS 1.3
	// reports the missing certificate after the handshake), 7 refused, 28
	// timeout.
	for _, tc := range []struct {
		name, url string
		allowed   map[int32]bool
	}{
		{"rogue-frontend", "https://frontend-svc." + ns + ".svc:8080/healthz", map[int32]bool{35: true, 56: true}},
		{"rogue-backend", "https://backend-svc." + ns + ".svc:8080/healthz", map[int32]bool{7: true, 28: true, 35: true, 56: true}},
	} {
		res := runPod(ctx, t, toolboxPod(ns, tc.name, nil, nil, "fetch", "-k", "--max-time", "10s", tc.url))
		if !tc.allowed[res.exitCode] || strings.Contains(res.logs, "HTTP 200") {
			t.Errorf("%s: fetch -k %s exited %d, want a refused connection (%v):\n%s", tc.name, tc.url, res.exitCode, tc.allowed, res.logs)
		}
	}
	res := runPod(ctx, t, toolboxPod(ns, "trusted-fetch", optInAnnotations(), nil,
		append(withPodCert("fetch", "--fail", "--max-time", "10s"),
			"-X", "POST", "-d", `{"request_id": "e2e-1"}`, "https://frontend-svc."+ns+".svc:8080/submit")...))
	if res.exitCode != 0 || !strings.Contains(res.logs, `"request_id":"e2e-1"`) {
		t.Errorf("control pod with a certificate: fetch exited %d, want 0 and the answer:\n%s", res.exitCode, res.logs)
	}
}

// A certificate from the right CA is not enough: the backend lets in only
// the SPIFFE IDs in ALLOWED_CLIENTS. A pod that carries the frontend's
// labels (so the NetworkPolicy lets it reach backend-svc) but runs as
// another service account holds a valid certificate for its own identity,
// completes the TLS handshake, and is answered 403 by the backend.
func TestBackendRefusesUnlistedIdentity(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	ns := suite.demoNamespace
	dumpOnFailure(t, ns)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "intruder", Namespace: ns}}
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().ServiceAccounts(ns).Delete(context.Background(), "intruder", metav1.DeleteOptions{})
	})
	frontend := readyPod(ctx, t, ns, "frontend")
	pod := toolboxPod(ns, "intruder", optInAnnotations(), frontendSelector(frontend),
		// kube-router admits the new pod's address as a frontend source a
		// moment after the pod started: retry a refused connection briefly.
		withPodCert("fetch", "--fail", "--max-time", "10s", "--retry-refused", "20s", "-X", "POST", "-d", `{"request_id": "e2e-403"}`,
			"https://backend-svc."+ns+".svc:8080/process")...)
	pod.Spec.ServiceAccountName = "intruder"
	res := runPod(ctx, t, pod)
	if res.exitCode != 22 || !strings.Contains(res.logs, "HTTP 403") {
		t.Fatalf("a valid certificate for spiffe://cluster.local/ns/%s/sa/intruder: fetch exited %d, want 22 and HTTP 403 from the backend:\n%s", ns, res.exitCode, res.logs)
	}
}

// The chart's NetworkPolicy is enforced, not just stored: a pod with a
// valid certificate but without the frontend's labels reaches frontend-svc
// (open to all), yet its connection to backend-svc's app port is dropped
// at the TCP level, while the backend's ops port, which the policy leaves
// open, answers it. The backend listens on 8080 and the pod's certificate is
// valid, so a refused connection (kube-router rejects) or a timeout (other
// implementations drop) can only be the policy's doing.
func TestNetworkPolicyDropsRogueConnection(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	ns := suite.demoNamespace
	dumpOnFailure(t, ns)
	backend := readyPod(ctx, t, ns, "backend")
	open := runPod(ctx, t, toolboxPod(ns, "np-frontend", optInAnnotations(), nil,
		withPodCert("fetch", "--fail", "--max-time", "10s", "https://frontend-svc."+ns+".svc:8080/healthz")...))
	if open.exitCode != 0 {
		t.Fatalf("control: frontend-svc from a pod with a certificate: fetch exited %d:\n%s", open.exitCode, open.logs)
	}
	ops := runPod(ctx, t, toolboxPod(ns, "np-ops", nil, nil,
		"fetch", "--fail", "--max-time", "10s", fmt.Sprintf("http://%s:8081/healthz", backend.Status.PodIP)))
	if ops.exitCode != 0 {
		t.Fatalf("control: the backend's ops port (open in the policy) exited %d:\n%s", ops.exitCode, ops.logs)
	}
	dropped := runPod(ctx, t, toolboxPod(ns, "np-rogue", optInAnnotations(), nil,
		withPodCert("fetch", "--max-time", "8s", "https://backend-svc."+ns+".svc:8080/healthz")...))
	if dropped.exitCode != 7 && dropped.exitCode != 28 {
		t.Fatalf("backend-svc:8080 from a non-frontend pod: fetch exited %d, want 7 or 28 (refused or dropped by the NetworkPolicy):\n%s", dropped.exitCode, dropped.logs)
	}
}

// A plain Deployment, never annotated, runs without a certificate. Once its
// pod template is annotated, the rollout's new pods are injected and serve
// a certificate from the namespace's CA, as `kubectl annotate` on a real
// workload would do.
func TestAnnotatingADeploymentTurnsOnMTLS(t *testing.T) {
	ctx := ctxFor(t, 8*time.Minute)
	ns := suite.demoNamespace
	dumpOnFailure(t, ns)
	psc, csc := restrictedSecurity()
	labels := map[string]string{"app": "late-adopter"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "late-adopter", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{{
					Name: "app", Image: image("backend"), ImagePullPolicy: corev1.PullIfNotPresent, SecurityContext: csc,
					// The ops port serves /metrics in plain HTTP, as the chart sets it.
					Env: []corev1.EnvVar{{Name: "USE_MTLS", Value: "false"}, {Name: "OPS_PORT", Value: "8081"}},
				}}},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.AppsV1().Deployments(ns).Delete(context.Background(), dep.Name, metav1.DeleteOptions{})
	})
	waitRollout(ctx, t, ns, dep.Name)
	plain := readySelected(ctx, t, ns, "app=late-adopter")
	if hasCSIVolume(plain) {
		t.Fatal("an unannotated Deployment's pod got the CSI volume")
	}
	if m := metrics(ctx, t, plain); m.Serial != "" {
		t.Fatalf("the plain pod reports a certificate in service: %+v", m)
	}

	// kubectl annotate: the pod template opts in. USE_MTLS=false in the
	// template would win over the injected switch (user values win), so the
	// patch removes it, as a user turning mTLS on would.
	patch := `{"spec":{"template":{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/issuer":"demo-ca"}},` +
		`"spec":{"containers":[{"name":"app","env":[{"name":"USE_MTLS","$patch":"delete"}]}]}}}}`
	if _, err := kube.AppsV1().Deployments(ns).Patch(ctx, dep.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRollout(ctx, t, ns, dep.Name)
	injected := readySelected(ctx, t, ns, "app=late-adopter")
	if injected.UID == plain.UID || !hasCSIVolume(injected) {
		t.Fatalf("after annotating the template: pod %s (was %s), CSI volume %t; want a new, injected pod", injected.Name, plain.Name, hasCSIVolume(injected))
	}
	m := metrics(ctx, t, injected)
	if wantID := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/default", ns); m.Serial == "" || m.Identity != wantID {
		t.Fatalf("the injected pod does not serve a certificate for %s: %+v", wantID, m)
	}
}

// Case 2 vs Case 3: with short-lived certificates the CSI driver renews the
// files about a minute after the pods start. With CERT_RELOAD=true the apps
// switch serials by themselves; with CERT_RELOAD=false they keep serving the
// first certificate until `kubectl rollout restart`.
func TestCertRenewalReloadVsRestart(t *testing.T) {
	// Two namespaces of their own: both cases run beside the other parallel
	// tests (without this, the parent would wait for its subtests before the
	// next test starts).
	t.Parallel()
	short := []string{"pki.certDuration=5m", "pki.certRenewBefore=3m30s"}
	t.Run("reload", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 10*time.Minute)
		ns := "e2e-case3-reload"
		installDemo(t, ns, append(short, "reload=true")...)
		pod := readyPod(ctx, t, ns, "backend")
		first := servingSerial(ctx, t, pod)
		err := wait.PollUntilContextCancel(ctx, 5*time.Second, false, func(ctx context.Context) (bool, error) {
			return servingSerial(ctx, t, pod) != first, nil
		})
		if err != nil {
			t.Fatalf("CERT_RELOAD=true: serial still %s after renewal was due: %v", first, err)
		}
		if v := metrics(ctx, t, pod).Reloads; v == 0 {
			t.Errorf("mtls_cert_reloads_total = %v, want > 0", v)
		}
		// Still the same pod: the renewal needed no restart.
		if again := readyPod(ctx, t, ns, "backend"); again.UID != pod.UID || again.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("backend pod was replaced or restarted")
		}
	})
	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 10*time.Minute)
		ns := "e2e-case2-restart"
		installDemo(t, ns, append(short, "reload=false")...)
		pod := readyPod(ctx, t, ns, "backend")
		first := servingSerial(ctx, t, pod)
		// Wait until the driver has renewed this pod's certificate: a
		// CertificateRequest newer than the pod's start (the driver keeps only
		// the latest request per volume).
		started := pod.Status.StartTime.Time
		err := wait.PollUntilContextCancel(ctx, 5*time.Second, false, func(ctx context.Context) (bool, error) {
			crs, err := dyn.Resource(certificateRequests).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, cr := range crs.Items {
				if cr.GetCreationTimestamp().After(started.Add(30 * time.Second)) {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("no renewed CertificateRequest in %s: %v", ns, err)
		}
		// Give a reloading app ample time (poll interval 10s) to have
		// switched. Not a poll: the test proves that nothing happens.
		time.Sleep(30 * time.Second)
		if got := servingSerial(ctx, t, pod); got != first {
			t.Fatalf("CERT_RELOAD=false: serial changed %s -> %s without a restart", first, got)
		}
		// kubectl rollout restart deployment backend.
		if err := kubeutil.RolloutRestart(ctx, kube, ns, "backend"); err != nil {
			t.Fatal(err)
		}
		waitRollout(ctx, t, ns, "backend")
		fresh := readyPod(ctx, t, ns, "backend")
		if fresh.UID == pod.UID {
			t.Fatal("rollout restart kept the old pod")
		}
		if got := servingSerial(ctx, t, fresh); got == first {
			t.Errorf("after rollout restart the serial is still %s", got)
		}
	})
}

// waitRollout waits until a Deployment's new ReplicaSet is fully rolled out.
func waitRollout(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return rolledOut(d), nil
	})
	if err != nil {
		t.Fatalf("deployment %s/%s not rolled out: %v", ns, name, err)
	}
}

func rolledOut(d *appsv1.Deployment) bool {
	want := ptr.Deref(d.Spec.Replicas, 1)
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want &&
		s.Replicas == want && s.AvailableReplicas == want
}
