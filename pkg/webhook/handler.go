// Package webhook is the admission side of mtls-webhook: a thin
// controller-runtime admission.Handler around the inject pipeline, plus the
// cluster lookups the pure packages must not do themselves (Services for
// derived DNS names, Issuers for an early "this will never be signed").
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// Path is where the API server sends pod admission reviews.
const Path = "/mutate-pods"

// VerifyPath is where the API server sends, for validation, every pod that
// has a csi.cert-manager.io volume, opted in or not (Handler.Verify).
const VerifyPath = "/validate-pods"

// Results counted by mtls_webhook_admissions_total.
const (
	ResultInjected = "injected"
	ResultSkipped  = "skipped"
	ResultDenied   = "denied"
	ResultError    = "error"
	// ResultVerified counts pods whose csi.cert-manager.io volume the
	// validating endpoint found to be the webhook's own.
	ResultVerified = "verified"
	// ResultAllowed counts workloads whose pod template passed the
	// pipeline (WorkloadPath).
	ResultAllowed = "allowed"
)

// KindPod is the kind label of the pod endpoints' admissions.
const KindPod = "Pod"

// kindOther labels the admissions of an endpoint that could not tell the
// object's kind (an unreadable review), or got one it does not act on.
const kindOther = "other"

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// Handler mutates opted-in pods. Its fields are set once at start-up.
type Handler struct {
	Injector *inject.Injector
	// Reader lists Services (normally the manager's cached client). Nil
	// means no DNS names are derived.
	Reader client.Reader
	// ServicesIndexed says Reader has the index of IndexServices: the
	// handler then looks up only the Services that may select the pod
	// instead of listing the namespace's.
	ServicesIndexed bool
	// Issuers checks that the issuer exists and is Ready. Nil means off.
	Issuers *IssuerChecker
	Metrics *Metrics
	Log     logr.Logger
}

var _ admission.Handler = (*Handler)(nil)

// Handle implements admission.Handler. The HTTP server does not go through
// it (see NewHTTPHandler), but tests and other embedders may.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, result := h.handle(ctx, req, h.handlePod)
	h.observe(KindPod, result, start)
	return resp
}

// Verifier is the validating side of a Handler, as an admission.Handler.
type Verifier struct{ *Handler }

var _ admission.Handler = Verifier{}

// Handle implements admission.Handler for VerifyPath.
func (v Verifier) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, result := v.handle(ctx, req, v.verifyPod)
	v.observe(KindPod, result, start)
	return resp
}

// podDecision answers one decoded pod create.
type podDecision func(ctx context.Context, uid types.UID, namespace string, pod *corev1.Pod) (admission.Response, string)

func (h *Handler) observe(kind, result string, start time.Time) {
	if h.Metrics != nil {
		h.Metrics.observe(kind, result, time.Since(start))
	}
}

// isPodCreate reports whether a request is one the webhook acts on.
func isPodCreate(resource metav1.GroupVersionResource, subResource string, op admissionv1.Operation) bool {
	return resource == podResource && subResource == "" && op == admissionv1.Create
}

var (
	skipNotPodCreate = func() admission.Response { return admission.Allowed("mtls-webhook only mutates pod creation") }
	errNoPod         = errors.New("the admission request carries no pod")
)

func (h *Handler) handle(ctx context.Context, req admission.Request, decide podDecision) (admission.Response, string) {
	if !isPodCreate(req.Resource, req.SubResource, req.Operation) {
		return skipNotPodCreate(), ResultSkipped
	}
	if len(req.Object.Raw) == 0 {
		return admission.Errored(http.StatusBadRequest, errNoPod), ResultError
	}
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err)), ResultError
	}
	return decide(ctx, req.UID, req.Namespace, pod)
}

// handlePod is the decision for one decoded pod create in namespace.
func (h *Handler) handlePod(ctx context.Context, uid types.UID, namespace string, pod *corev1.Pod) (admission.Response, string) {
	if !annotations.OptedIn(pod.Annotations) {
		return admission.Allowed("pod has not opted in with " + annotations.Enable), ResultSkipped
	}
	if pod.Namespace == "" {
		pod.Namespace = namespace
	}
	// The pod's key/values go into each log call: WithValues would encode
	// them on every admission, for lines that are mostly not written.
	who := func() []any {
		return []any{"namespace", pod.Namespace, "pod", podName(pod), "uid", annotations.Quote(string(uid))}
	}

	services, err := h.servicesFor(ctx, pod)
	if err != nil {
		h.Log.Error(err, "listing Services for derived DNS names", who()...)
		return admission.Errored(http.StatusInternalServerError, err), ResultError
	}

	out := h.Injector.Inject(pod, services)
	warnings := out.Warnings
	errs := out.Errors
	if out.Injected && h.Issuers != nil {
		w, el := h.Issuers.Check(ctx, pod.Namespace, out.Config.Issuer)
		if w != "" {
			warnings = append(warnings, w)
		}
		errs = append(errs, el...)
	}
	if len(errs) > 0 {
		return h.deny(podKind, podName(pod), errs, warnings, who), ResultDenied
	}

	resp := patchResponse(pod, out.Pod).WithWarnings(boundWarnings(warnings)...)
	if resp.Result != nil && !resp.Allowed {
		return resp, ResultError
	}
	if l := h.Log.V(1); l.Enabled() {
		l.Info("injected", append(who(), "status", out.Pod.Annotations[annotations.Status], "patchBytes", len(resp.Patch), "fallbackOps", len(resp.Patches))...)
	}
	return resp, ResultInjected
}

var podKind = schema.GroupKind{Kind: KindPod}

// servicesFor returns the Services that may give pod its DNS names: none
// when the pod names its own, or when there is no Reader.
func (h *Handler) servicesFor(ctx context.Context, pod *corev1.Pod) ([]corev1.Service, error) {
	if _, explicit := pod.Annotations[annotations.DNSNames]; explicit || h.Reader == nil {
		return nil, nil
	}
	services, err := h.candidateServices(ctx, pod)
	if err != nil {
		return nil, fmt.Errorf("listing Services in %s: %w", pod.Namespace, err)
	}
	return services, nil
}

// deny refuses an object of kind gk named name with every cause, as a 422
// the API server passes on.
func (h *Handler) deny(gk schema.GroupKind, name string, errs field.ErrorList, warnings []string, who func() []any) admission.Response {
	h.Log.Info("refused", append(who(), "causes", annotations.Truncate(errs.ToAggregate().Error(), maxLoggedCauses))...)
	if h.Metrics != nil {
		h.Metrics.denied(errs)
	}
	status := apierrors.NewInvalid(gk, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: false, Result: &status, Warnings: boundWarnings(warnings),
	}}
}

// verifyPod is the validating decision: a pod with a csi.cert-manager.io
// volume is stored only if that volume is exactly the webhook's own (see
// inject.Injector.Verify). Validation runs after every mutating webhook, on
// the pod as it will be stored, so nothing that mutates later can slip a
// volume past it.
func (h *Handler) verifyPod(_ context.Context, uid types.UID, namespace string, pod *corev1.Pod) (admission.Response, string) {
	if pod.Namespace == "" {
		pod.Namespace = namespace
	}
	errs := h.Injector.Verify(pod)
	if len(errs) > 0 {
		return h.deny(podKind, podName(pod), errs, nil, func() []any {
			return []any{"namespace", pod.Namespace, "pod", podName(pod), "uid", annotations.Quote(string(uid)), "endpoint", VerifyPath}
		}), ResultDenied
	}
	for _, v := range pod.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == mutate.Driver {
			return admission.Allowed("the " + mutate.Driver + " volume is mtls-webhook's own"), ResultVerified
		}
	}
	return admission.Allowed("no " + mutate.Driver + " volume"), ResultSkipped
}

// candidateServices returns the Services of the pod's namespace that may
// select it; mutate.DeriveDNSNames makes the exact match.
func (h *Handler) candidateServices(ctx context.Context, pod *corev1.Pod) ([]corev1.Service, error) {
	if !h.ServicesIndexed {
		list := &corev1.ServiceList{}
		err := h.Reader.List(ctx, list, client.InNamespace(pod.Namespace))
		return list.Items, err
	}
	var services []corev1.Service
	for k, v := range pod.Labels {
		list := &corev1.ServiceList{}
		if err := h.Reader.List(ctx, list, client.InNamespace(pod.Namespace), client.MatchingFields{serviceSelectorIndex: selectorPair(k, v)}); err != nil {
			return nil, err
		}
		services = append(services, list.Items...)
	}
	return services, nil
}

// patchResponse allows the pod with the patch that turns pod into mutated.
func patchResponse(pod, mutated *corev1.Pod) admission.Response {
	if ops, ok := podPatch(pod, mutated); ok {
		resp := admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true}}
		if len(ops) == 0 {
			return resp
		}
		patch, err := json.Marshal(ops)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		// The encoded patch goes straight into the response; Complete only
		// encodes Patches, which stays empty.
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
		return resp
	}
	// The mutation removed something, which podPatch does not express: diff
	// the two encodings instead. Both sides come from the same typed encoding, so
	// fields this build of the Pod type does not know are left alone.
	original, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	current, err := json.Marshal(mutated)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(original, current)
}

// podName names a pod in messages before the API server has named it. The
// API server checks names after mutating admission, so the name is cut to
// a bounded length.
func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return annotations.Quote(pod.Name)
	}
	if pod.GenerateName != "" {
		return annotations.Quote(pod.GenerateName) + "*"
	}
	return "(unnamed)"
}
