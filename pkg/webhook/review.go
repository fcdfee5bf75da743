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
)

// The AdmissionReview versions the webhook answers. The response is written
// in the version of the request, so a configuration that still lists
// v1beta1 keeps working.
const (
	reviewKind    = "AdmissionReview"
	reviewV1      = "admission.k8s.io/v1"
	reviewV1beta1 = "admission.k8s.io/v1beta1"
)

// reviewServer is the HTTP side of the webhook: an AdmissionReview in, an
// AdmissionReview out. It answers what controller-runtime's
// admission.Webhook answers for the API server's requests (a test compares
// the two on every golden case), but reads the review and the pod in one
// pass over the body: the generic path reads the body three times (to sniff
// apiVersion and kind, to decode the review, and again for the pod) and
// copies the object in between, which was half of the time per request.
type reviewServer struct {
	h *Handler
	// verify selects the validating decision (VerifyPath) instead of the
	// mutating one.
	verify bool
}

// decision is the answer this server gives for a decoded pod.
func (s reviewServer) decision() podDecision {
	if s.verify {
		return s.h.verifyPod
	}
	return s.h.handlePod
}

// reviewIn is the part of an AdmissionReview the webhook reads, with the
// pod decoded straight into admissionPod.
type reviewIn struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Request    *requestIn `json:"request"`
}

// requestHeader is what the webhook reads of an AdmissionRequest besides
// the object.
type requestHeader struct {
	UID         types.UID                   `json:"uid"`
	Resource    metav1.GroupVersionResource `json:"resource"`
	SubResource string                      `json:"subResource"`
	Namespace   string                      `json:"namespace"`
	Operation   admissionv1.Operation       `json:"operation"`
}

type requestIn struct {
	requestHeader
	Object *admissionPod `json:"object"`
}

// reviewRaw is the fallback shape, with the object left undecoded: used
// only when the one-pass decode fails, to tell a malformed review from a
// request for something other than a pod (which is allowed untouched,
// whatever its object looks like) and to name what is wrong.
type reviewRaw struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		requestHeader
		Object json.RawMessage `json:"object"`
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

func (s reviewServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("method %s is not allowed: the API server POSTs admission reviews", r.Method), http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest,
			fmt.Errorf("Content-Type %q is not supported: send application/json", ct)), ResultError, start)
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
		s.reply(w, reviewV1, "", admission.Errored(int32(code), fmt.Errorf("reading the admission review: %w", err)), ResultError, start)
		return
	}
	body := buf.Bytes()
	if len(body) == 0 {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, errors.New("request body is empty: want an AdmissionReview")), ResultError, start)
		return
	}

	var in reviewIn
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil {
		s.serveFallback(w, r, body, start)
		return
	}
	version, err := reviewVersion(in.APIVersion, in.Kind)
	if err != nil {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, err), ResultError, start)
		return
	}
	req := in.Request
	if req == nil {
		s.reply(w, version, "", admission.Errored(http.StatusBadRequest, errors.New("the admission review carries no request")), ResultError, start)
		return
	}
	if !isPodCreate(req.Resource, req.SubResource, req.Operation) {
		s.reply(w, version, req.UID, skipNotPodCreate(), ResultSkipped, start)
		return
	}
	if req.Object == nil {
		s.reply(w, version, req.UID, admission.Errored(http.StatusBadRequest, errNoPod), ResultError, start)
		return
	}
	resp, result := s.handlePod(r.Context(), req.UID, req.Namespace, req.Object)
	s.reply(w, version, req.UID, resp, result, start)
}

// serveFallback answers a body the one-pass decode refused.
func (s reviewServer) serveFallback(w http.ResponseWriter, r *http.Request, body []byte, start time.Time) {
	var in reviewRaw
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the admission review: %w", err)), ResultError, start)
		return
	}
	version, err := reviewVersion(in.APIVersion, in.Kind)
	if err != nil {
		s.reply(w, reviewV1, "", admission.Errored(http.StatusBadRequest, err), ResultError, start)
		return
	}
	if in.Request == nil {
		s.reply(w, version, "", admission.Errored(http.StatusBadRequest, errors.New("the admission review carries no request")), ResultError, start)
		return
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: in.Request.UID, Resource: in.Request.Resource, SubResource: in.Request.SubResource,
		Namespace: in.Request.Namespace, Operation: in.Request.Operation,
	}}
	if string(in.Request.Object) != "null" {
		req.Object.Raw = in.Request.Object
	}
	resp, result := s.h.handle(r.Context(), req, s.decision())
	s.reply(w, version, req.UID, resp, result, start)
}

// handlePod runs the handler on a decoded pod and turns a panic into an
// error answer for this request alone.
func (s reviewServer) handlePod(ctx context.Context, uid types.UID, namespace string, in *admissionPod) (resp admission.Response, result string) {
	defer func() {
		if p := recover(); p != nil {
			s.h.Log.Error(fmt.Errorf("panic: %v", p), "handling the admission review", "uid", uid)
			resp, result = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p)), ResultError
		}
	}()
	return s.decision()(ctx, uid, namespace, in.pod())
}

// reply completes resp for uid and writes it as an AdmissionReview of the
// given version.
func (s reviewServer) reply(w http.ResponseWriter, version string, uid types.UID, resp admission.Response, result string, start time.Time) {
	if err := resp.Complete(admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: uid}}); err != nil {
		resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("encoding the patch: %w", err))
		resp.UID, result = uid, ResultError
	}
	out, err := json.Marshal(reviewOut{APIVersion: version, Kind: reviewKind, Response: &resp.AdmissionResponse})
	if err != nil {
		// An AdmissionResponse always encodes; this is not reachable with
		// the types above, but must not be silent if it ever is.
		s.h.Log.Error(err, "encoding the admission response", "uid", uid)
		http.Error(w, "encoding the admission response failed", http.StatusInternalServerError)
		s.h.observe(ResultError, start)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(out); err != nil {
		s.h.Log.V(1).Info("writing the admission response", "uid", uid, "error", err.Error())
	}
	s.h.observe(result, start)
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
