package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/internal/controlplane"
	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/webhook"
	"github.com/mtls-demo/mtls-webhook/test/helm/chart"
)

// workloadsURL is the workload endpoint of the webhook whose pod endpoint
// is podURL.
func workloadsURL(podURL string) string {
	return strings.TrimSuffix(podURL, webhook.Path) + webhook.WorkloadPath
}

// installWorkloadWebhook registers the chart's workloads.mtls.demo
// configuration (its rules, matchConditions, failurePolicy and timeout)
// for url, narrowed to namespaces labelled caseLabel=name.
func installWorkloadWebhook(t testing.TB, cs kubernetes.Interface, name, url string, caBundle []byte) {
	t.Helper()
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	for _, o := range chart.Render(t, chart.HelmBinary(t), chart.WebhookChart, chart.Options{}) {
		if o.GetKind() != "ValidatingWebhookConfiguration" || !strings.HasSuffix(o.GetName(), "-workloads") {
			continue
		}
		vwc = &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, vwc, true); err != nil {
			t.Fatalf("rendered %s: %v", o.GetName(), err)
		}
	}
	if vwc == nil || len(vwc.Webhooks) != 1 || vwc.Webhooks[0].Name != "workloads.mtls.demo" {
		t.Fatalf("the chart renders no workloads.mtls.demo ValidatingWebhookConfiguration: %+v", vwc)
	}
	wh := &vwc.Webhooks[0]
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Ignore || wh.TimeoutSeconds == nil || *wh.TimeoutSeconds > 5 {
		t.Errorf("workloads.mtls.demo: failurePolicy %v timeoutSeconds %v, want Ignore and a short timeout", wh.FailurePolicy, wh.TimeoutSeconds)
	}
	vwc.Name, vwc.Annotations = "it-"+name+"-workloads", nil
	wh.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
	wh.NamespaceSelector = narrow(wh.NamespaceSelector, name)
	api := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := api.Create(ctxFor(t, 10*time.Second), vwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating %s: %v", vwc.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := api.Delete(ctx, vwc.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting %s: %v", vwc.Name, err)
		}
	})
}

// workloadClient is a controller-runtime client whose warnings go to rec.
func workloadClient(t testing.TB) (client.Client, *controlplane.Warnings) {
	t.Helper()
	rec := &controlplane.Warnings{}
	cfg := rest.CopyConfig(suite.cfg)
	cfg.WarningHandler = rec
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// newWorkload returns a workload of kind in ns whose pod template carries
// ann. Jobs are created suspended: a suspended Job that never ran is the
// one whose template annotations may still change.
func newWorkload(kind, ns, name string, ann map[string]string) client.Object {
	labels := map[string]string{"app": name}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	sel := &metav1.LabelSelector{MatchLabels: labels}
	meta := metav1.ObjectMeta{Name: name, Namespace: ns}
	zero := int32(0)
	switch kind {
	case inject.KindDeployment:
		return &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &zero, Selector: sel, Template: tmpl}}
	case inject.KindStatefulSet:
		return &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &zero, ServiceName: name, Selector: sel, Template: tmpl}}
	case inject.KindDaemonSet:
		return &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}
	case inject.KindReplicaSet:
		return &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Replicas: &zero, Selector: sel, Template: tmpl}}
	case inject.KindJob:
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
		return &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Suspend: new(true), Template: tmpl}}
	case inject.KindCronJob:
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
		return &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: new(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}
	}
	panic("unknown kind " + kind)
}

// templateOf returns the pod template of a workload made by newWorkload.
func templateOf(t testing.TB, obj client.Object) *corev1.PodTemplateSpec {
	t.Helper()
	_, _, tmpl, ok := inject.TemplateOf(obj)
	if !ok {
		t.Fatalf("%T has no pod template", obj)
	}
	return tmpl
}

var workloadKindsUnderTest = []string{inject.KindDeployment, inject.KindStatefulSet, inject.KindDaemonSet, inject.KindReplicaSet, inject.KindJob, inject.KindCronJob}

// waitCheckingWorkloads polls dry-run creations of a Deployment with a bad
// template until workloads.mtls.demo refuses one: the API server loads
// webhook configurations asynchronously, and with failurePolicy Ignore an
// unloaded one looks like an accepting one.
func waitCheckingWorkloads(t testing.TB, c client.Client, ns string) {
	t.Helper()
	eventually(t, 30*time.Second, "the API server to call workloads.mtls.demo for "+ns, func(ctx context.Context) error {
		probe := newWorkload(inject.KindDeployment, ns, "probe", optIn("ca", "key-size", "1000"))
		switch err := c.Create(ctx, probe, client.DryRunAll); {
		case err == nil:
			return errors.New("dry run accepted: the workload webhook is not called yet")
		case !strings.Contains(err.Error(), `admission webhook "workloads.mtls.demo" denied the request`):
			return fmt.Errorf("dry run not refused by the workload webhook: %w", err)
		}
		return nil
	})
}

// TestWorkloadsAreCheckedAtApply: a Deployment, StatefulSet, DaemonSet,
// ReplicaSet, Job and CronJob whose pod template has a bad annotation are
// each refused at create (and at a server-side dry run) and at an update
// that breaks the template, with a 422 naming the template's field path;
// nothing is stored. A good one is created with the warnings its pods
// would get. The webhook counts them by kind.
func TestWorkloadsAreCheckedAtApply(t *testing.T) {
	cs, _, cm := clients(t)
	c, warns := workloadClient(t)
	ns := namespace(t, cs, "workloads", nil)
	createIssuer(t, cm, ns, "ca", cmmeta.ConditionTrue)
	installWorkloadWebhook(t, cs, "workloads", workloadsURL(suite.webhookURL), suite.webhook.ca.CertPEM)
	waitCheckingWorkloads(t, c, ns)

	for _, kind := range workloadKindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			ctx := ctxFor(t, 60*time.Second)
			path, _ := inject.TemplatePath(kind)
			field := path.String() + ".metadata.annotations[mtls.demo/key-size]"
			name := strings.ToLower(kind)
			before := admissionsOf(t, suite.metricsURL, kind)

			// Refused at create, the same with --dry-run=server.
			for _, dry := range []bool{true, false} {
				var opts []client.CreateOption
				if dry {
					opts = append(opts, client.DryRunAll)
				}
				err := c.Create(ctx, newWorkload(kind, ns, name+"-bad", optIn("ca", "key-size", "1000")), opts...)
				errorContains(t, err, `admission webhook "workloads.mtls.demo" denied the request`,
					fmt.Sprintf(`%s.%s "%s-bad" is invalid`, kind, groupOf(kind), name), field, `Invalid value: "1000"`, "ECDSA keys must be 256, 384 or 521 bits")
				if !apierrors.IsInvalid(err) {
					t.Errorf("dry run %v: reason %q, want Invalid (422)", dry, apierrors.ReasonForError(err))
				}
				if kind == inject.KindDeployment && err != nil {
					t.Logf("dry run %v: the API server answers:\n%v", dry, err)
				}
			}
			// Every problem at once: two bad annotations and a container
			// that does not exist, in one answer.
			err := c.Create(ctx, newWorkload(kind, ns, name+"-bad", optIn("ca", "duration", "forever", "key-size", "1000", "containers", "ghost")), client.DryRunAll)
			errorContains(t, err, path.String()+".metadata.annotations[mtls.demo/duration]", field,
				path.String()+`.metadata.annotations[mtls.demo/containers]: Invalid value: "ghost"`)
			if kind == inject.KindDeployment && err != nil {
				t.Logf("every problem at once, dry run:\n%v", err)
			}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-bad"}, newWorkload(kind, ns, "", nil)); !apierrors.IsNotFound(err) {
				t.Errorf("the refused %s was stored (get: %v)", kind, err)
			}

			// A good template is accepted, with its pods' warnings.
			warns.Take()
			good := newWorkload(kind, ns, name, optIn("ca", "isuer", "ca"))
			if err := c.Create(ctx, good); err != nil {
				t.Fatalf("creating a good %s: %v", kind, err)
			}
			got := warns.Take()
			assertWarning(t, got, path.String()+": annotation mtls.demo/isuer is not known", "did you mean mtls.demo/issuer?")
			assertWarning(t, got, path.String()+": no Service in namespace "+ns+" selects this pod")
			if kind == inject.KindDeployment {
				t.Logf("warnings on creating a good Deployment: %q", got)
			}

			// Refused at an update that breaks the template (a merge patch:
			// the controllers update the workload's status meanwhile).
			broken := good.DeepCopyObject().(client.Object)
			templateOf(t, broken).Annotations[annotations.KeySize] = "1000"
			err = c.Patch(ctx, broken, client.MergeFrom(good))
			errorContains(t, err, `admission webhook "workloads.mtls.demo" denied the request`, field, `"1000"`)
			stored := newWorkload(kind, ns, "", nil)
			if err := c.Get(ctx, client.ObjectKeyFromObject(good), stored); err != nil {
				t.Fatal(err)
			}
			if v, ok := templateOf(t, stored).Annotations[annotations.KeySize]; ok {
				t.Errorf("the refused update was stored: key-size %q", v)
			}

			after := admissionsOf(t, suite.metricsURL, kind)
			if d := after[webhook.ResultDenied] - before[webhook.ResultDenied]; d < 3 {
				t.Errorf("denied counter for %s moved by %v, want at least 3 (dry run, create, update)", kind, d)
			}
			if d := after[webhook.ResultAllowed] - before[webhook.ResultAllowed]; d < 1 {
				t.Errorf("allowed counter for %s moved by %v, want at least 1", kind, d)
			}
		})
	}
}

func groupOf(kind string) string {
	if kind == inject.KindJob || kind == inject.KindCronJob {
		return "batch"
	}
	return "apps"
}

// TestUnannotatedWorkloadsNeverReachWebhook: the chart's matchConditions
// keep workloads whose template did not opt in away from the webhook (its
// counter does not move), however bad their other mtls.demo annotations.
func TestUnannotatedWorkloadsNeverReachWebhook(t *testing.T) {
	cs, _, _ := clients(t)
	c, _ := workloadClient(t)
	ns := namespace(t, cs, "workloads-plain", nil)
	installWorkloadWebhook(t, cs, "workloads-plain", workloadsURL(suite.webhookURL), suite.webhook.ca.CertPEM)
	waitCheckingWorkloads(t, c, ns)
	ctx := ctxFor(t, 60*time.Second)

	counts := func() float64 {
		var n float64
		for _, kind := range workloadKindsUnderTest {
			n += total(admissionsOf(t, suite.metricsURL, kind))
		}
		return n
	}
	before := counts()
	for _, kind := range workloadKindsUnderTest {
		for i, ann := range []map[string]string{
			nil,
			{annotations.KeySize: "1000"},
			{annotations.Enable: "false", annotations.KeySize: "1000"},
		} {
			obj := newWorkload(kind, ns, fmt.Sprintf("%s-%d", strings.ToLower(kind), i), ann)
			if err := c.Create(ctx, obj); err != nil {
				t.Errorf("%s %v: %v", kind, ann, err)
			}
			// An update does not reach it either.
			patch := []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)
			if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
				t.Errorf("updating %s %v: %v", kind, ann, err)
			}
		}
	}
	if d := counts() - before; d != 0 {
		t.Errorf("the webhook saw %v workload reviews for templates that did not opt in, want 0", d)
	}
	// The counter does move for an opted-in template, so the zero above
	// means something.
	allowed := admissionsOf(t, suite.metricsURL, inject.KindDeployment)[webhook.ResultAllowed]
	if err := c.Create(ctx, newWorkload(inject.KindDeployment, ns, "opted-in", optIn("ca"))); err != nil {
		t.Fatal(err)
	}
	if d := admissionsOf(t, suite.metricsURL, inject.KindDeployment)[webhook.ResultAllowed] - allowed; d != 1 {
		t.Errorf("the Deployment allowed counter moved by %v for one opted-in Deployment, want 1", d)
	}
}

// TestWorkloadsAcceptedWhileWebhookDown: with the webhook gone, workloads
// are still created (workloads.mtls.demo is failurePolicy Ignore), even one
// with a bad template, while the pods of their ReplicaSet are still refused
// (inject.mtls.demo is failurePolicy Fail): nothing runs without its
// certificate.
func TestWorkloadsAcceptedWhileWebhookDown(t *testing.T) {
	cs, _, _ := clients(t)
	c, _ := workloadClient(t)
	ca, err := newCA("workloads-down-ca")
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := startWebhookProcess(t, "workloads-down", ca)
	ns := namespace(t, cs, "workloads-down", nil)
	install(t, cs, chartWebhookConfig(t, "workloads-down", proc.url, ca.CertPEM))
	installWorkloadWebhook(t, cs, "workloads-down", workloadsURL(proc.url), ca.CertPEM)
	waitInjecting(t, ns)
	waitCheckingWorkloads(t, c, ns)

	proc.kill()

	ctx := ctxFor(t, 90*time.Second)
	for _, kind := range workloadKindsUnderTest {
		start := time.Now()
		if err := c.Create(ctx, newWorkload(kind, ns, strings.ToLower(kind)+"-bad", optIn("ca", "key-size", "1000"))); err != nil {
			t.Errorf("%s with the webhook down: %v", kind, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("creating a %s took %s with the webhook down", kind, d)
		}
	}
	one := int32(1)
	dep := newWorkload(inject.KindDeployment, ns, "web", optIn("ca")).(*appsv1.Deployment)
	dep.Spec.Replicas = &one
	if err := c.Create(ctx, dep); err != nil {
		t.Fatalf("creating a Deployment with the webhook down: %v", err)
	}
	eventually(t, 60*time.Second, "the ReplicaSet to report its pod refused", func(ctx context.Context) error {
		list := &appsv1.ReplicaSetList{}
		if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"app": "web"}); err != nil {
			return err
		}
		for _, rs := range list.Items {
			for _, cond := range rs.Status.Conditions {
				if cond.Type == appsv1.ReplicaSetReplicaFailure && strings.Contains(cond.Message, `failed calling webhook "inject.mtls.demo"`) {
					t.Logf("ReplicaSet %s: %s", rs.Name, cond.Message)
					return nil
				}
			}
		}
		return fmt.Errorf("%d ReplicaSets, none with a ReplicaFailure from inject.mtls.demo yet", len(list.Items))
	})
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("%d pods were created with the webhook down, want 0", len(pods.Items))
	}
}
