package check

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// cert-manager's resources, read and dry-run through the dynamic client.
var (
	certificatesGVR   = schema.GroupVersionResource{Group: annotations.CertManagerGroup, Version: "v1", Resource: "certificates"}
	issuersGVR        = schema.GroupVersionResource{Group: annotations.CertManagerGroup, Version: "v1", Resource: "issuers"}
	clusterIssuersGVR = schema.GroupVersionResource{Group: annotations.CertManagerGroup, Version: "v1", Resource: "clusterissuers"}
)

// canaryName names the dry-run objects, so that an audit log shows who
// made them.
const canaryName = "mtls-webhook-check-canary"

// certManagerAPI: cert-manager's API group is served and its webhook
// answers, shown by a server-side dry run of a Certificate (as
// startupapicheck does).
func (c *Checker) certManagerAPI(ctx context.Context) Result {
	gv := certificatesGVR.GroupVersion().String()
	res, err := c.Kube.Discovery().ServerResourcesForGroupVersion(gv)
	if err != nil {
		return fail("the API server does not serve %s (%v): install cert-manager with its CRDs (crds.enabled=true) before mtls-webhook", gv, err)
	}
	have := map[string]bool{}
	for _, r := range res.APIResources {
		have[r.Name] = true
	}
	var missing []string
	for _, want := range []string{"certificates", "certificaterequests", "issuers", "clusterissuers"} {
		if !have[want] {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return fail("%s lacks %s: the cert-manager CRDs are incomplete; reinstall cert-manager with crds.enabled=true", gv, strings.Join(missing, ", "))
	}
	cert := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gv,
		"kind":       "Certificate",
		"metadata":   map[string]any{"name": canaryName, "namespace": c.CanaryNamespace},
		"spec": map[string]any{
			"secretName": canaryName,
			"dnsNames":   []any{canaryName + ".invalid"},
			"issuerRef":  map[string]any{"name": canaryName, "kind": "Issuer", "group": annotations.CertManagerGroup},
		},
	}}
	_, err = c.Dynamic.Resource(certificatesGVR).Namespace(c.CanaryNamespace).Create(ctx, cert, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return fail("a dry-run Certificate in namespace %s was refused: %v: is cert-manager's webhook (deployment cert-manager-webhook) running and Ready?", c.CanaryNamespace, err)
	}
	return ok("%s is served and cert-manager's webhook accepted a dry-run Certificate in namespace %s", gv, c.CanaryNamespace)
}

// csiDriver: the CSIDriver object exists with the modes the injected
// inline volume needs, and the driver is registered on nodes.
func (c *Checker) csiDriver(ctx context.Context) Result {
	d, err := c.Kube.StorageV1().CSIDrivers().Get(ctx, mutate.Driver, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fail("CSIDriver %s not found: the kubelet refuses the injected inline volumes without it; install cert-manager's csi-driver (helm chart jetstack/cert-manager-csi-driver)", mutate.Driver)
	}
	if err != nil {
		return fail("reading CSIDriver %s: %v", mutate.Driver, err)
	}
	if !slices.Contains(d.Spec.VolumeLifecycleModes, storagev1.VolumeLifecycleEphemeral) {
		return fail("CSIDriver %s has volumeLifecycleModes %v, which lacks %s: the kubelet refuses the injected inline volumes; reinstall cert-manager's csi-driver",
			mutate.Driver, d.Spec.VolumeLifecycleModes, storagev1.VolumeLifecycleEphemeral)
	}
	if !ptr.Deref(d.Spec.PodInfoOnMount, false) {
		return fail("CSIDriver %s has podInfoOnMount false: the driver cannot learn the pod's name, namespace and ServiceAccount for the certificate; reinstall cert-manager's csi-driver", mutate.Driver)
	}
	nodes, err := c.Kube.StorageV1().CSINodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail("listing CSINodes: %v", err)
	}
	var with, without []string
	for _, n := range nodes.Items {
		if slices.ContainsFunc(n.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == mutate.Driver }) {
			with = append(with, n.Name)
		} else {
			without = append(without, n.Name)
		}
	}
	switch {
	case len(with) == 0:
		return fail("CSIDriver %s exists but no node registered it (%d CSINode(s)): is the csi-driver DaemonSet running on the nodes (kubectl get daemonset -A -l app.kubernetes.io/name=cert-manager-csi-driver)?",
			mutate.Driver, len(nodes.Items))
	case len(without) > 0:
		return warn("%s is registered on %d node(s) but not on %s: injected pods scheduled there cannot start; check the csi-driver DaemonSet's tolerations and node selector",
			mutate.Driver, len(with), list(without, 5))
	}
	return ok("CSIDriver %s exists and is registered on %d node(s)", mutate.Driver, len(with))
}

// mutatingWebhook reads the release's MutatingWebhookConfiguration and
// returns it with its first webhook that calls a Service.
func (c *Checker) mutatingWebhook(ctx context.Context) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhook, error) {
	mwc, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("MutatingWebhookConfiguration %s not found: is the release installed (helm list -A), and is --name (or --release) right?", c.Name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", c.Name, err)
	}
	for i := range mwc.Webhooks {
		if mwc.Webhooks[i].ClientConfig.Service != nil {
			return mwc, &mwc.Webhooks[i], nil
		}
	}
	return nil, nil, fmt.Errorf("MutatingWebhookConfiguration %s has no webhook that calls a Service: it was not written by the chart", c.Name)
}

// webhookConfig: the configuration exists and every webhook in it carries
// a caBundle with at least one certificate.
func (c *Checker) webhookConfig(ctx context.Context) Result {
	mwc, _, err := c.mutatingWebhook(ctx)
	if err != nil {
		return fail("%v", err)
	}
	for i, w := range mwc.Webhooks {
		if _, err := parseBundle(w.ClientConfig.CABundle); err != nil {
			return fail("MutatingWebhookConfiguration %s webhooks[%d] (%s) clientConfig.caBundle: %v: the API server cannot verify the webhook, so every opted-in pod is refused; cainjector fills it from the Certificate named in the annotation %s (now %q): check that annotation and the cert-manager-cainjector logs, or run helm upgrade",
				mwc.Name, i, w.Name, err, injectCAFrom, mwc.Annotations[injectCAFrom])
		}
	}
	return ok("MutatingWebhookConfiguration %s: %d webhook(s), each with a caBundle", mwc.Name, len(mwc.Webhooks))
}

// injectCAFrom is cainjector's annotation on the webhook configuration.
const injectCAFrom = "cert-manager.io/inject-ca-from"

// webhookPods: the Deployment has Ready replicas and the Service has ready
// endpoints, which is what the API server calls.
func (c *Checker) webhookPods(ctx context.Context) Result {
	d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fail("Deployment %s/%s not found: is the release installed in namespace %s (--namespace), and is --name right?", c.Namespace, c.Name, c.Namespace)
	}
	if err != nil {
		return fail("reading Deployment %s/%s: %v", c.Namespace, c.Name, err)
	}
	want := ptr.Deref(d.Spec.Replicas, 1)
	if want == 0 {
		return fail("Deployment %s/%s is scaled to 0 replicas: nothing answers admission requests, so opted-in pods are refused (failurePolicy Fail) or run without certificates (Ignore); scale it up: kubectl -n %s scale deployment/%s --replicas=2, or helm upgrade",
			c.Namespace, c.Name, c.Namespace, c.Name)
	}
	if d.Status.ReadyReplicas == 0 {
		return fail("Deployment %s/%s has 0 of %d replicas Ready: look at its pods (kubectl -n %s get pods -l app.kubernetes.io/component=webhook, then describe and logs)",
			c.Namespace, c.Name, want, c.Namespace)
	}
	svcName, ready, err := c.readyEndpoints(ctx)
	if err != nil {
		return fail("%v", err)
	}
	if len(ready) == 0 {
		return fail("Service %s/%s has no ready endpoints although Deployment %s has %d Ready replica(s): does the Service's selector match the pods' labels?",
			c.Namespace, svcName, c.Name, d.Status.ReadyReplicas)
	}
	if d.Status.ReadyReplicas < want {
		return warn("Deployment %s/%s has %d of %d replicas Ready; Service %s has %d ready endpoint(s)", c.Namespace, c.Name, d.Status.ReadyReplicas, want, svcName, len(ready))
	}
	return ok("Deployment %s/%s has %d of %d replicas Ready; Service %s has %d ready endpoint(s)", c.Namespace, c.Name, d.Status.ReadyReplicas, want, svcName, len(ready))
}

// endpoint is a ready address of the webhook's Service, with the port the
// pod listens on.
type endpoint struct {
	addr string
	port int32
}

// readyEndpoints returns the ready endpoints of the Service the webhook
// configuration calls (named after the release when the configuration
// cannot be read), on the target port of the configured Service port.
func (c *Checker) readyEndpoints(ctx context.Context) (string, []endpoint, error) {
	svcName, port := c.Name, int32(443)
	if _, w, err := c.mutatingWebhook(ctx); err == nil {
		svcName, port = w.ClientConfig.Service.Name, ptr.Deref(w.ClientConfig.Service.Port, 443)
	}
	svc, err := c.Kube.CoreV1().Services(c.Namespace).Get(ctx, svcName, metav1.GetOptions{})
	if err != nil {
		return svcName, nil, fmt.Errorf("reading Service %s/%s: %w", c.Namespace, svcName, err)
	}
	portName := ""
	found := false
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			portName, found = p.Name, true
		}
	}
	if !found {
		return svcName, nil, fmt.Errorf("the Service %s/%s has no port %d, which the webhook configuration calls", c.Namespace, svcName, port)
	}
	eps, err := c.Kube.DiscoveryV1().EndpointSlices(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svcName})
	if err != nil {
		return svcName, nil, fmt.Errorf("listing EndpointSlices of Service %s/%s: %w", c.Namespace, svcName, err)
	}
	var out []endpoint
	for _, s := range eps.Items {
		var target int32
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") == portName && p.Port != nil {
				target = *p.Port
			}
		}
		if target == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if !ptr.Deref(e.Conditions.Ready, false) {
				continue
			}
			for _, a := range e.Addresses {
				out = append(out, endpoint{addr: a, port: target})
			}
		}
	}
	return svcName, out, nil
}

// webhookInjects: a canary pod that opts in, created with a server-side dry
// run, comes back with the CSI volume: the API server reached the webhook
// over TLS, and the webhook answered.
func (c *Checker) webhookInjects(ctx context.Context) Result {
	ann := map[string]string{annotations.Enable: "true"}
	if c.CanaryIssuer != "" {
		ann[annotations.Issuer] = c.CanaryIssuer
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: canaryName, Namespace: c.CanaryNamespace, Annotations: ann,
			Labels: map[string]string{"app.kubernetes.io/name": canaryName}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			// Restricted, so that Pod Security admission in the canary
			// namespace lets it through whatever its level.
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "canary", Image: "registry.k8s.io/pause:3.10",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	got, err := c.Kube.CoreV1().Pods(c.CanaryNamespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		var st apierrors.APIStatus
		if errors.As(err, &st) && apierrors.IsNotFound(err) && st.Status().Details != nil && st.Status().Details.Kind == "namespaces" {
			return fail("canary namespace %s not found: create it, or pass --canary-namespace with a namespace the webhook serves", c.CanaryNamespace)
		}
		return fail("the dry-run canary pod %s/%s was refused: %v", c.CanaryNamespace, canaryName, err)
	}
	var missing []string
	vol := slices.IndexFunc(got.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == mutate.VolumeName && v.CSI != nil && v.CSI.Driver == mutate.Driver
	})
	if vol < 0 {
		missing = append(missing, fmt.Sprintf("volume %s (%s)", mutate.VolumeName, mutate.Driver))
	}
	ctr := got.Spec.Containers[0]
	if !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == mutate.VolumeName }) {
		missing = append(missing, "volumeMount "+mutate.VolumeName)
	}
	for _, env := range []string{"MTLS_CERT_FILE", "MTLS_KEY_FILE", "MTLS_CA_FILE"} {
		if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool { return e.Name == env }) {
			missing = append(missing, "env "+env)
		}
	}
	if len(missing) > 0 {
		return fail("the dry-run canary pod %s/%s was admitted without %s: the webhook did not mutate it; is namespace %s excluded from injection (the release namespace, kube-system, label mtls.demo/injection=disabled)? Pass --canary-namespace with a namespace the webhook serves",
			c.CanaryNamespace, canaryName, strings.Join(missing, ", "), c.CanaryNamespace)
	}
	issuer := got.Spec.Volumes[vol].CSI.VolumeAttributes["csi.cert-manager.io/issuer-name"]
	return ok("a dry-run canary pod in namespace %s came back injected (volume %s, issuer %q)", c.CanaryNamespace, mutate.VolumeName, issuer)
}

// bypassedPods: pods that opted in but run without the volume, because they
// were admitted while the webhook was bypassed (failurePolicy Ignore, the
// configuration deleted) or live in a namespace excluded from injection.
// They are listed as a warning: the install is sound, those pods need to be
// re-created.
func (c *Checker) bypassedPods(ctx context.Context) Result {
	var bypassed []string
	total := 0
	opts := metav1.ListOptions{Limit: 500}
	for {
		pods, err := c.Kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, opts)
		if err != nil {
			return fail("listing pods in all namespaces: %v", err)
		}
		for _, p := range pods.Items {
			if !annotations.OptedIn(p.Annotations) || p.DeletionTimestamp != nil ||
				p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			total++
			if !slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.CSI != nil && v.CSI.Driver == mutate.Driver }) {
				bypassed = append(bypassed, p.Namespace+"/"+p.Name)
			}
		}
		if opts.Continue = pods.Continue; opts.Continue == "" {
			break
		}
	}
	if len(bypassed) > 0 {
		slices.Sort(bypassed)
		return warn("%d of %d opted-in pod(s) run without a %s volume (admitted while the webhook was bypassed, or in a namespace excluded from injection): %s; re-create them (kubectl rollout restart their workload) to have them injected",
			len(bypassed), total, mutate.Driver, list(bypassed, 10))
	}
	return ok("all %d opted-in pod(s) have a %s volume", total, mutate.Driver)
}

// list joins up to n items and says how many more there are.
func list(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
