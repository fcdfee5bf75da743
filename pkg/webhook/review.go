package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// The AdmissionReview versions the webhook answers. The response is written
// in the version of the request, so a configuration that still lists
// v1beta1 keeps working.
const (
	reviewKind    = "AdmissionReview"
	reviewV1      = "admission.k8s.io/v1"
	reviewV1beta1 = "admission.k8s.io/v1beta1"
)

// reviewServer is the HTTP side of one endpoint: an AdmissionReview in, an
// AdmissionReview out. It answers what controller-runtime's
// admission.Webhook answers for the API server's requests (a test compares
// the two on every golden case), but reads the review and the object in one
// pass over the body: the generic path reads the body three times (to sniff
// apiVersion and kind, to decode the review, and again for the object) and
// copies the object in between, which was half of the time per request.
// T is the partial object the endpoint decodes (admissionPod,
// admissionWorkload); every endpoint shares this path.
type reviewServer[T any] struct {
	h *Handler
	// kind labels the metrics of reviews read too little to know the
	// object's kind.
	kind string
	// decide answers a request decoded in one pass.
	decide func(ctx context.Context, req *requestIn[T]) (resp admission.Response, kind, result string)
	// handle answers a request whose object is still raw JSON: the
	// fallback when the one-pass decode failed, which decodes the object
	// alone to say what is wrong with it.
	handle func(ctx context.Context, req admission.Request) (resp admission.Response, kind, result string)
}

// podServer is the reviewServer of a pod endpoint: decide answers a pod
// create; anything else is allowed untouched.
func podServer(h *Handler, decide podDecision) reviewServer[admissionPod] {
	return reviewServer[admissionPod]{
		h:    h,
		kind: KindPod,
		decide: func(ctx context.Context, req *requestIn[admissionPod]) (admission.Response, string, string) {
			if !isPodCreate(req.Resource, req.SubResource, req.Operation) {
				return skipNotPodCreate(), KindPod, ResultSkipped
			}
			if req.Object == nil {
				return admission.Errored(http.StatusBadRequest, errNoPod), KindPod, ResultError
			}
			resp, result := decide(ctx, req.UID, req.Namespace, req.Object.pod())
			return resp, KindPod, result
		},
		handle: func(ctx context.Context, req admission.Request) (admission.Response, string, string) {
			resp, result := h.handle(ctx, req, decide)
			return resp, KindPod, result
		},
	}
}

// reviewIn is the part of an AdmissionReview the webhook reads, with the
// object decoded straight into T.
type reviewIn[T any] struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Request    *requestIn[T] `json:"request"`
}

// requestHeader is what the webhook reads of an AdmissionRequest besides
// the objects.
type requestHeader struct {
	UID         types.UID                   `json:"uid"`
	Resource    metav1.GroupVersionResource `json:"resource"`
	SubResource string                      `json:"subResource"`
	Namespace   string                      `json:"namespace"`
	Operation   admissionv1.Operation       `json:"operation"`
}

type requestIn[T any] struct {
	requestHeader
	Object *T `json:"object"`
	// OldObject is there on UPDATE: the workload endpoint lets an update
	// that leaves the pod template alone through.
	OldObject *T `json:"oldObject"`
}

// reviewRaw is the fallback shape, with the objects left undecoded: used
// only when the one-pass decode fails, to tell a malformed review from a
// request for something the endpoint does not act on (which is allowed
// untouched, whatever its object looks like) and to name what is wrong.
type reviewRaw struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		requestHeader
		Object    json.RawMessage `json:"object"`
		OldObject json.RawMessage `json:"oldObject"`
	} `json:"request"`
}

type reviewOut struct {
	APIVersion string                         `json:"apiVersion"`
	Kind       string                         `json:"kind"`
	Response   *admissionv1.AdmissionResponse `json:"response"`
}

// bodies recycles request buffers. Decoding copies every string it keeps,
// so nothing refers to a buffer once the request is answered.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s reviewServer[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("method %s is not allowed: the API server POSTs admission reviews", r.Method), http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest,
			fmt.Errorf("Content-Type %q is not supported: send application/json", ct)), s.kind, ResultError, start)
		return
	}
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 { // do not keep the rare huge body alive
			bodies.Put(buf)
		}
	}()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(r.Body); err != nil {
		code := http.StatusBadRequest
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			code, err = http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", mbe.Limit)
		}
		s.reply(w, reviewV1, "", admission.Errored(int32(code), fmt.Errorf("reading the admission review: %w", err)), s.kind, ResultError, start)
		return
	}
	body := buf.Bytes()
	if len(body) == 0 {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, errors.New("request body is empty: want an AdmissionReview")), s.kind, ResultError, start)
		return
	}

	var in reviewIn[T]
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil {
		s.serveFallback(w, r, body, start)
		return
	}
	version, err := reviewVersion(in.APIVersion, in.Kind)
	if err != nil {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, err), s.kind, ResultError, start)
		return
	}
	req := in.Request
	if req == nil {
		s.reply(w, version, "", admission.Errored(http.StatusBadRequest, errors.New("the admission review carries no request")), s.kind, ResultError, start)
		return
	}
	var resp admission.Response
	kind, result := s.kind, ResultError
	s.safely(req.UID, func() { resp, kind, result = s.decide(r.Context(), req) }, &resp)
	s.reply(w, version, req.UID, resp, kind, result, start)
}

// serveFallback answers a body the one-pass decode refused.
func (s reviewServer[T]) serveFallback(w http.ResponseWriter, r *http.Request, body []byte, start time.Time) {
	var in reviewRaw
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the admission review: %w", err)), s.kind, ResultError, start)
		return
	}
	version, err := reviewVersion(in.APIVersion, in.Kind)
	if err != nil {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, err), s.kind, ResultError, start)
		return
	}
	if in.Request == nil {
		s.reply(w, version, "", admission.Errored(http.StatusBadRequest, errors.New("the admission review carries no request")), s.kind, ResultError, start)
		return
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: in.Request.UID, Resource: in.Request.Resource, SubResource: in.Request.SubResource,
		Namespace: in.Request.Namespace, Operation: in.Request.Operation,
	}}
	if string(in.Request.Object) != "null" {
		req.Object.Raw = in.Request.Object
	}
	if string(in.Request.OldObject) != "null" {
		req.OldObject.Raw = in.Request.OldObject
	}
	var resp admission.Response
	kind, result := s.kind, ResultError
	s.safely(req.UID, func() { resp, kind, result = s.handle(r.Context(), req) }, &resp)
	s.reply(w, version, req.UID, resp, kind, result, start)
}

// safely runs answer and turns a panic into an error answer for this
// request alone.
func (s reviewServer[T]) safely(uid types.UID, answer func(), resp *admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			s.h.Log.Error(fmt.Errorf("panic: %v", p), "handling the admission review", "uid", annotations.Quote(string(uid)))
			*resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p))
		}
	}()
	answer()
}

// reply completes resp for uid and writes it as an AdmissionReview of the
// given version.
func (s reviewServer[T]) reply(w http.ResponseWriter, version string, uid types.UID, resp admission.Response, kind, result string, start time.Time) {
	if err := resp.Complete(admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: uid}}); err != nil {
		resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("encoding the patch: %w", err))
		resp.UID, result = uid, ResultError
	}
	out, err := json.Marshal(reviewOut{APIVersion: version, Kind: reviewKind, Response: &resp.AdmissionResponse})
	if err != nil {
		// An AdmissionResponse always encodes; this is not reachable with
		// the types above, but must not be silent if it ever is.
		s.h.Log.Error(err, "encoding the admission response", "uid", annotations.Quote(string(uid)))
		http.Error(w, "encoding the admission response failed", http.StatusInternalServerError)
		s.h.observe(kind, ResultError, start)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(out); err != nil {
		s.h.Log.V(1).Info("writing the admission response", "uid", annotations.Quote(string(uid)), "error", err.Error())
	}
	s.h.observe(kind, result, start)
}

// reviewVersion checks apiVersion and kind and returns the version to
// answer in. Both may be absent; the answer is then v1.
func reviewVersion(apiVersion, kind string) (string, error) {
	if kind != "" && kind != reviewKind {
		return "", fmt.Errorf("kind %q is not supported: send an %s", kind, reviewKind)
	}
	switch apiVersion {
	case "", reviewV1:
		return reviewV1, nil
	case reviewV1beta1:
		return reviewV1beta1, nil
	}
	return "", fmt.Errorf("apiVersion %q is not supported: send %s or %s", apiVersion, reviewV1, reviewV1beta1)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
