package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// referenceHTTPHandler is controller-runtime's generic admission.Webhook
// around the same Handler: the path the webhook served before reviewServer,
// kept here as the reference its answers are compared with.
func referenceHTTPHandler(h *Handler) http.Handler {
	return limitBody(&ctrlwebhook.Admission{Handler: h}, MaxRequestBytes)
}

// post sends body to h and decodes the AdmissionReview it answers.
func post(t testing.TB, h http.Handler, body []byte, contentType string) (*admissionv1.AdmissionReview, *httptest.ResponseRecorder) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		return nil, w
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &ar); err != nil {
		t.Fatalf("answer is not an AdmissionReview: %v\n%s", err, w.Body.String())
	}
	return &ar, w
}

// reviewOf builds an AdmissionReview body by hand around object, which is
// inserted verbatim.
func reviewOf(apiVersion, resource, operation, ns string, object []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"apiVersion":"` + apiVersion + `","kind":"AdmissionReview","request":{"uid":"req-1",`)
	b.WriteString(`"kind":{"group":"","version":"v1","kind":"Pod"},`)
	b.WriteString(`"resource":{"group":"","version":"v1","resource":"` + resource + `"},`)
	b.WriteString(`"operation":"` + operation + `","namespace":"` + ns + `","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"}`)
	if object != nil {
		b.WriteString(`,"object":`)
		b.Write(object)
	}
	b.WriteString(`,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`)
	return b.Bytes()
}

// sameAnswer fails unless the two reviews carry the same response in the
// same version.
func sameAnswer(t *testing.T, got, want *admissionv1.AdmissionReview) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("missing answer: got %v, reference %v", got, want)
	}
	if got.APIVersion != want.APIVersion || got.Kind != want.Kind {
		t.Errorf("answered as %s %s, reference %s %s", got.APIVersion, got.Kind, want.APIVersion, want.Kind)
	}
	if diff := cmp.Diff(want.Response, got.Response); diff != "" {
		t.Errorf("response differs from controller-runtime's (-reference +got):\n%s", diff)
	}
}

// TestServeHTTPAnswersLikeControllerRuntime: the one-pass server and
// controller-runtime's generic webhook give byte-for-byte the same
// response, patch, warnings and status for the peer pod and every golden
// case, injected or refused, in both review versions.
func TestServeHTTPAnswersLikeControllerRuntime(t *testing.T) {
	type input struct {
		name, ns string
		raw      []byte
		h        *Handler
	}
	inputs := []input{{"peer-pod", "prod", peerPod(t), &Handler{Injector: testInjector(t)}}}
	for _, c := range goldenCases(t) {
		inputs = append(inputs, input{c.name, c.pod.Namespace, c.raw, c.handler})
	}
	for _, in := range inputs {
		for _, version := range []string{reviewV1, reviewV1beta1} {
			t.Run(in.name+"/"+version, func(t *testing.T) {
				body := reviewOf(version, "pods", "CREATE", in.ns, in.raw)
				got, _ := post(t, NewHTTPHandler(in.h), body, "application/json")
				want, _ := post(t, referenceHTTPHandler(in.h), body, "application/json")
				sameAnswer(t, got, want)
			})
		}
	}
}

func TestServeHTTPEdgeCases(t *testing.T) {
	optedIn := podJSON(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{annotations.Enable: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}})
	v1 := func(object []byte) []byte { return reviewOf(reviewV1, "pods", "CREATE", "ns", object) }
	tests := []struct {
		name        string
		body        []byte
		contentType string
		h           *Handler
		allowed     bool
		code        int32
		message     string
		uid         string
		// sameAsReference: controller-runtime answers exactly this too.
		sameAsReference bool
	}{
		{name: "an opted-in pod is patched", body: v1(optedIn), allowed: true, code: 200, uid: "req-1", sameAsReference: true},
		{name: "an update is allowed untouched", body: reviewOf(reviewV1, "pods", "UPDATE", "ns", optedIn), allowed: true, code: 200, uid: "req-1", sameAsReference: true},
		{name: "another resource is allowed untouched whatever its object", body: reviewOf(reviewV1, "deployments", "CREATE", "ns", []byte(`{"spec":{"containers":"not a list"}}`)), allowed: true, code: 200, uid: "req-1", sameAsReference: true},
		{name: "a pod of the wrong shape is a 400 naming the pod", body: v1([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":true}}}`)), code: 400, message: "decoding the pod: ", uid: "req-1", sameAsReference: true},
		{name: "a null object is a 400", body: v1([]byte(`null`)), code: 400, message: "carries no pod", uid: "req-1", sameAsReference: true},
		{name: "no object is a 400", body: v1(nil), code: 400, message: "carries no pod", uid: "req-1", sameAsReference: true},
		{name: "a body that is not JSON is a 400", body: []byte(`{"apiVersion":`), code: 400, message: "decoding the admission review"},
		{name: "an empty body is a 400", body: []byte{}, code: 400, message: "request body is empty"},
		{name: "a review without a request is a 400", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), code: 400, message: "carries no request"},
		{name: "another kind is named", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"TokenReview","request":{}}`), code: 400, message: `kind "TokenReview" is not supported: send an AdmissionReview`},
		{name: "another version is named", body: []byte(`{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{}}`), code: 400, message: `apiVersion "admission.k8s.io/v2" is not supported: send admission.k8s.io/v1 or admission.k8s.io/v1beta1`},
		{name: "a YAML content type is named", body: v1(optedIn), contentType: "application/yaml", code: 400, message: `Content-Type "application/yaml" is not supported: send application/json`},
		{name: "a charset parameter is fine", body: v1(optedIn), contentType: "application/json; charset=utf-8", allowed: true, code: 200, uid: "req-1"},
		{name: "a panic is a 500 for this request alone", body: v1(optedIn), h: &Handler{}, code: 500, message: "panic: ", uid: "req-1", sameAsReference: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h == nil {
				h = &Handler{Injector: testInjector(t)}
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			got, w := post(t, NewHTTPHandler(h), tc.body, ct)
			if got == nil {
				t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
			}
			if w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
			r := got.Response
			if r == nil || r.Result == nil {
				t.Fatalf("no response or status: %s", w.Body.String())
			}
			if r.Allowed != tc.allowed || r.Result.Code != tc.code || string(r.UID) != tc.uid {
				t.Errorf("allowed=%v code=%d uid=%q, want %v %d %q (%s)", r.Allowed, r.Result.Code, r.UID, tc.allowed, tc.code, tc.uid, r.Result.Message)
			}
			if !strings.Contains(r.Result.Message, tc.message) {
				t.Errorf("message %q lacks %q", r.Result.Message, tc.message)
			}
			if tc.sameAsReference {
				want, _ := post(t, referenceHTTPHandler(h), tc.body, ct)
				if r.Result.Code == 500 {
					// The panic's text includes the handler's stack position
					// only in the log; compare what the API server sees.
					if want.Response.Result.Code != 500 || !strings.HasPrefix(want.Response.Result.Message, "panic: ") {
						t.Errorf("reference answered %+v", want.Response)
					}
					return
				}
				sameAnswer(t, got, want)
			}
		})
	}
}

func TestServeHTTPOnlyTakesPOST(t *testing.T) {
	w := httptest.NewRecorder()
	NewHTTPHandler(&Handler{Injector: testInjector(t)}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, Path, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost || !strings.Contains(w.Body.String(), "method GET is not allowed") {
		t.Errorf("GET: %d %q allow=%q", w.Code, w.Body.String(), w.Header().Get("Allow"))
	}
}

// FuzzServeHTTP compares the one-pass server with controller-runtime's
// generic webhook on reviews whose object, resource and operation are
// fuzzed: any JSON object must get the same answer from both; anything
// else must be refused by both with a 400.
func FuzzServeHTTP(f *testing.F) {
	f.Add(peerPod(f), "pods", "CREATE")
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"yes"}},"spec":{"containers":[{"name":"a"}]}}`), "pods", "CREATE")
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/app":"frontend"}},"spec":{"containers":[{"name":"a","image":"x"}]}}`), "pods", "CREATE")
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true"}},"spec":{"volumes":[{"name":"mtls-certs","emptyDir":{}}],"containers":[{"name":"a"}]}}`), "pods", "CREATE")
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":true}}}`), "pods", "CREATE")
	f.Add([]byte(`{"spec":{"containers":"x"}}`), "deployments", "CREATE")
	f.Add([]byte(`null`), "pods", "UPDATE")
	f.Add([]byte(`{"metAdAtA":{}}`), "pods", "CREATE")
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true"}},"spec":{"securityContext":{"runAsUser":1},"containers":[{"name":"a","securityContext":{"runAsGroup":2}},{"name":"b","securityContext":{"runAsGroup":3}}]}}`), "pods", "CREATE")
	h := &Handler{Injector: testInjector(f)}
	lean, reference := NewHTTPHandler(h), referenceHTTPHandler(h)
	f.Fuzz(func(t *testing.T, object []byte, resource, operation string) {
		if !json.Valid([]byte(`"`+resource+`"`)) || !json.Valid([]byte(`"`+operation+`"`)) {
			return // the names are inserted verbatim into the review
		}
		body := reviewOf(reviewV1, resource, operation, "ns", object)
		got, w := post(t, lean, body, "application/json")
		if got == nil || got.Response == nil || got.Response.Result == nil {
			t.Fatalf("no AdmissionReview with a status: HTTP %d %s", w.Code, w.Body.String())
		}
		want, _ := post(t, reference, body, "application/json")
		if !json.Valid(object) {
			if got.Response.Allowed || got.Response.Result.Code != http.StatusBadRequest {
				t.Fatalf("invalid JSON answered %+v", got.Response)
			}
			if want != nil && want.Response != nil && want.Response.Allowed {
				t.Fatalf("reference allowed invalid JSON: %+v", want.Response)
			}
			return
		}
		sameAnswer(t, got, want)
	})
}
