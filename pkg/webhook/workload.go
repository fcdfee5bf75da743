package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
)

// WorkloadPath is where the API server sends, for validation, the
// Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs
// whose pod template opted in (Workloads).
const WorkloadPath = "/validate-workloads"

// workloadResources maps the resources WorkloadPath checks to their kind
// and group.
var workloadResources = map[metav1.GroupVersionResource]schema.GroupKind{
	{Group: "apps", Version: "v1", Resource: "deployments"}:  {Group: "apps", Kind: inject.KindDeployment},
	{Group: "apps", Version: "v1", Resource: "statefulsets"}: {Group: "apps", Kind: inject.KindStatefulSet},
	{Group: "apps", Version: "v1", Resource: "daemonsets"}:   {Group: "apps", Kind: inject.KindDaemonSet},
	{Group: "apps", Version: "v1", Resource: "replicasets"}:  {Group: "apps", Kind: inject.KindReplicaSet},
	{Group: "batch", Version: "v1", Resource: "jobs"}:        {Group: "batch", Kind: inject.KindJob},
	{Group: "batch", Version: "v1", Resource: "cronjobs"}:    {Group: "batch", Kind: inject.KindCronJob},
}

// workloadKinds are the kind labels of WorkloadPath's admissions.
var workloadKinds = []string{
	inject.KindDeployment, inject.KindStatefulSet, inject.KindDaemonSet,
	inject.KindReplicaSet, inject.KindJob, inject.KindCronJob,
}

// workloadKind returns the kind of a request WorkloadPath acts on: a
// CREATE or UPDATE of one of workloadResources itself (not a subresource
// such as scale or status, which cannot change the template).
func workloadKind(resource metav1.GroupVersionResource, subResource string, op admissionv1.Operation) (schema.GroupKind, bool) {
	gk, ok := workloadResources[resource]
	if !ok || subResource != "" || (op != admissionv1.Create && op != admissionv1.Update) {
		return schema.GroupKind{}, false
	}
	return gk, true
}

var (
	skipNotWorkload = func() admission.Response {
		return admission.Allowed("mtls-webhook only checks the pod templates of workloads being created or updated")
	}
	errNoWorkload = errors.New("the admission request carries no object")
)

// Workloads is the template check of a Handler (WorkloadPath) as an
// admission.Handler: a workload whose pod template opted in is refused when
// the pod it would create would be refused, with the template's field path,
// and otherwise allowed with the warnings that pod would get. It changes
// nothing: the pods are injected when they are created.
type Workloads struct{ *Handler }

var _ admission.Handler = Workloads{}

// Handle implements admission.Handler for WorkloadPath. The HTTP server
// does not go through it (see NewWorkloadHTTPHandler), but tests and other
// embedders may.
func (w Workloads) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, kind, result := w.handleWorkloadRequest(ctx, req)
	w.observe(kind, result, start)
	return resp
}

// handleWorkloadRequest decodes a request's objects and checks the
// template.
func (h *Handler) handleWorkloadRequest(ctx context.Context, req admission.Request) (admission.Response, string, string) {
	gk, ok := workloadKind(req.Resource, req.SubResource, req.Operation)
	if !ok {
		return skipNotWorkload(), kindOther, ResultSkipped
	}
	if len(req.Object.Raw) == 0 {
		return admission.Errored(http.StatusBadRequest, errNoWorkload), gk.Kind, ResultError
	}
	obj, err := decodeWorkload(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the %s: %w", gk.Kind, err)), gk.Kind, ResultError
	}
	var old *admissionWorkload
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err = decodeWorkload(req.OldObject.Raw); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the old %s: %w", gk.Kind, err)), gk.Kind, ResultError
		}
	}
	resp, result := h.checkWorkload(ctx, req.UID, req.Namespace, gk, req.Operation, obj, old)
	return resp, gk.Kind, result
}

// decideWorkload is WorkloadPath's answer to a request decoded in one pass.
func (h *Handler) decideWorkload(ctx context.Context, req *requestIn[admissionWorkload]) (admission.Response, string, string) {
	gk, ok := workloadKind(req.Resource, req.SubResource, req.Operation)
	if !ok {
		return skipNotWorkload(), kindOther, ResultSkipped
	}
	if req.Object == nil {
		return admission.Errored(http.StatusBadRequest, errNoWorkload), gk.Kind, ResultError
	}
	old := req.OldObject
	if req.Operation != admissionv1.Update {
		old = nil
	}
	resp, result := h.checkWorkload(ctx, req.UID, req.Namespace, gk, req.Operation, req.Object, old)
	return resp, gk.Kind, result
}

// checkWorkload runs the pod pipeline on the pod obj's template makes. An
// UPDATE that leaves the template as it was is allowed unchecked: the
// workload's controllers (a Deployment's revision annotation, the garbage
// collector's finalizers) must be able to update a workload whose template
// was stored before this check existed, or under other flags.
func (h *Handler) checkWorkload(ctx context.Context, uid types.UID, namespace string, gk schema.GroupKind, op admissionv1.Operation, obj, old *admissionWorkload) (admission.Response, string) {
	tmpl := obj.template(gk.Kind)
	if tmpl == nil {
		return admission.Allowed("the " + gk.Kind + " has no pod template"), ResultSkipped
	}
	if !annotations.OptedIn(tmpl.Metadata.Annotations) {
		return admission.Allowed("the pod template has not opted in with " + annotations.Enable), ResultSkipped
	}
	if op == admissionv1.Update && old != nil && reflect.DeepEqual(old.template(gk.Kind), tmpl) {
		return admission.Allowed("the pod template is unchanged"), ResultSkipped
	}
	path, _ := inject.TemplatePath(gk.Kind)
	ns := obj.Metadata.Namespace
	if ns == "" {
		ns = namespace
	}
	name := obj.owner()
	decoded := tmpl.pod()
	pod := inject.PodFromTemplate(ns, name, &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: decoded.Labels, Annotations: decoded.Annotations},
		Spec:       decoded.Spec,
	})
	who := func() []any {
		return []any{"namespace", ns, "kind", gk.Kind, "name", annotations.Quote(name), "uid", annotations.Quote(string(uid)), "endpoint", WorkloadPath}
	}

	services, err := h.servicesFor(ctx, pod)
	if err != nil {
		h.Log.Error(err, "listing Services for derived DNS names", who()...)
		return admission.Errored(http.StatusInternalServerError, err), ResultError
	}
	out := h.Injector.CheckTemplate(pod, path, services)
	warnings, errs := out.Warnings, out.Errors
	if out.Injected && h.Issuers != nil {
		w, el := h.Issuers.Check(ctx, ns, out.Config.Issuer)
		if w != "" {
			warnings = append(warnings, path.String()+": "+w)
		}
		errs = append(errs, inject.Rebase(el, path)...)
	}
	if len(errs) > 0 {
		return h.deny(gk, name, errs, warnings, who), ResultDenied
	}
	return admission.Allowed("the pod template passes mtls-webhook's checks").WithWarnings(boundWarnings(warnings)...), ResultAllowed
}
