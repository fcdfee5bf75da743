package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/csivalidate"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/pkg/policy"
)

func testInjector(tb testing.TB) *inject.Injector {
	tb.Helper()
	pol, err := policy.New(nil, false, "cluster.local")
	if err != nil {
		tb.Fatal(err)
	}
	d := annotations.NewDefaults()
	d.Issuer.Name = "demo-ca"
	return &inject.Injector{
		Defaults: d,
		Options:  mutate.Options{FrontendImage: "fe:1", BackendImage: "be:1", ClusterDomain: "cluster.local"},
		Policy:   pol,
		Checks:   csivalidate.NewMemo(64),
	}
}

// fakeReader is controller-runtime's fake client, named as a fake: it
// stands in for the manager's cache here; test/integration covers the real
// cache behind a real API server.
func fakeReader(tb testing.TB, objs ...client.Object) client.Reader {
	tb.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	if err := cmapi.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&cmapi.Issuer{}).
		WithIndex(&corev1.Service{}, serviceSelectorIndex, serviceIndexKeys).Build()
}

func peerPod(tb testing.TB) []byte {
	tb.Helper()
	raw, err := os.ReadFile("testdata/peer-pod.json")
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func request(raw []byte, ns string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       types.UID("req-1"),
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func podJSON(tb testing.TB, p *corev1.Pod) []byte {
	tb.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// applyPatch applies the response's JSON patch to the request object, as the
// API server does, and decodes the result.
func applyPatch(t *testing.T, raw []byte, resp admission.Response) *corev1.Pod {
	t.Helper()
	ops, err := patchBytes(resp)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("the patch does not apply to the request object: %v", err)
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(out, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func TestHandlePatchEqualsMutate(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	h := &Handler{Injector: testInjector(t), Reader: fakeReader(t, svc)}
	raw := peerPod(t)

	resp := h.Handle(context.Background(), request(raw, "prod"))
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("want an allowed JSON patch response, got %+v", resp.AdmissionResponse)
	}
	got := applyPatch(t, raw, resp)

	var in corev1.Pod
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	want := testInjector(t).Inject(&in, []corev1.Service{*svc})
	if !want.Injected {
		t.Fatalf("pipeline refused the peer pod: %v", want.Errors)
	}
	if diff := cmp.Diff(want.Pod, got); diff != "" {
		t.Errorf("patched request differs from the pipeline's pod (-want +got):\n%s", diff)
	}
	if !strings.Contains(want.Attributes[mutate.AttrDNSNames], "web.prod.svc.cluster.local") {
		t.Errorf("Service from the reader was not used: %q", want.Attributes[mutate.AttrDNSNames])
	}
}

// patchBytes is the patch as the API server receives it, whichever way the
// handler built it.
func patchBytes(resp admission.Response) ([]byte, error) {
	if err := resp.Complete(admission.Request{}); err != nil {
		return nil, err
	}
	return resp.Patch, nil
}

func TestHandleLeavesAPodThatDidNotOptIn(t *testing.T) {
	h := &Handler{Injector: testInjector(t)}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{annotations.Enable: "false"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	resp := h.Handle(context.Background(), request(podJSON(t, pod), "ns"))
	if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Patch) != 0 || resp.PatchType != nil {
		t.Fatalf("want allowed without patch, got %+v", resp)
	}
}

func TestHandleIgnoresWhatIsNotAPodCreate(t *testing.T) {
	h := &Handler{Injector: testInjector(t)}
	req := request(peerPod(t), "prod")
	req.Operation = admissionv1.Update
	if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Patch) != 0 || len(resp.Patches) != 0 {
		t.Errorf("update: %+v", resp)
	}
	req = request(peerPod(t), "prod")
	req.Resource.Resource = "services"
	if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Patch) != 0 || len(resp.Patches) != 0 {
		t.Errorf("service: %+v", resp)
	}
}

func TestHandleRefusesUndecodableRequestsWith400(t *testing.T) {
	h := &Handler{Injector: testInjector(t)}
	for name, raw := range map[string][]byte{"garbage": []byte("{not json"), "empty": nil, "wrong types": []byte(`{"metadata":{"annotations":{"mtls.demo/enable":true}}}`)} {
		resp := h.Handle(context.Background(), request(raw, "ns"))
		if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest {
			t.Errorf("%s: want 400, got %+v", name, resp.AdmissionResponse)
		}
	}
}

func TestHandleDeniesWithEveryCause(t *testing.T) {
	h := &Handler{Injector: testInjector(t)}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Annotations: map[string]string{
		annotations.Enable: "true", annotations.Duration: "forever", annotations.App: "database", "mtls.demo/isuer": "x"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	resp := h.Handle(context.Background(), request(podJSON(t, pod), "ns"))
	if resp.Allowed {
		t.Fatal("allowed")
	}
	st := resp.Result
	if st.Code != http.StatusUnprocessableEntity || st.Reason != metav1.StatusReasonInvalid || st.Details == nil || len(st.Details.Causes) != 2 {
		t.Fatalf("want a 422 Invalid status with 2 causes, got %+v", st)
	}
	for _, want := range []string{`metadata.annotations[mtls.demo/duration]: Invalid value: "forever"`, `metadata.annotations[mtls.demo/app]: Unsupported value: "database"`, `Pod "web-*" is invalid`} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("message %q lacks %q", st.Message, want)
		}
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "did you mean mtls.demo/issuer?") {
		t.Errorf("warnings of a denied pod are lost: %v", resp.Warnings)
	}
}

func TestHandleChecksIssuers(t *testing.T) {
	ready := &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "demo-ca", Namespace: "prod"},
		Status: cmapi.IssuerStatus{Conditions: []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue}}}}
	notReady := &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "demo-ca", Namespace: "prod"}}
	tests := map[string]struct {
		objs        []client.Object
		mode        IssuerCheckMode
		allowed     bool
		wantWarning string
	}{
		"a Ready issuer gives no warning":             {[]client.Object{ready}, IssuerCheckWarn, true, ""},
		"a missing issuer is a warning by default":    {nil, IssuerCheckWarn, true, "Issuer prod/demo-ca does not exist"},
		"an issuer that is not Ready is a warning":    {[]client.Object{notReady}, IssuerCheckWarn, true, "Issuer prod/demo-ca is not Ready"},
		"a missing issuer is refused in deny mode":    {nil, IssuerCheckDeny, false, ""},
		"a missing issuer passes silently when off":   {nil, IssuerCheckOff, true, ""},
		"a Ready issuer is fine in deny mode as well": {[]client.Object{ready}, IssuerCheckDeny, true, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := fakeReader(t, tc.objs...)
			h := &Handler{Injector: testInjector(t), Reader: r, Issuers: &IssuerChecker{Reader: r, Mode: tc.mode}}
			resp := h.Handle(context.Background(), request(peerPod(t), "prod"))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", resp.Allowed, tc.allowed, resp.Result)
			}
			joined := strings.Join(resp.Warnings, "\n")
			if tc.wantWarning == "" && strings.Contains(joined, "Issuer") {
				t.Errorf("unexpected issuer warning: %v", resp.Warnings)
			}
			if tc.wantWarning != "" && !strings.Contains(joined, tc.wantWarning) {
				t.Errorf("warnings %v lack %q", resp.Warnings, tc.wantWarning)
			}
			if !tc.allowed && !strings.Contains(resp.Result.Message, "metadata.annotations[mtls.demo/issuer]") {
				t.Errorf("denial does not name the annotation: %s", resp.Result.Message)
			}
		})
	}
}

func TestParseIssuerCheckMode(t *testing.T) {
	if _, err := ParseIssuerCheckMode("maybe"); err == nil || !strings.Contains(err.Error(), "warn, deny or off") {
		t.Errorf("err = %v", err)
	}
}

// review wraps a pod in an AdmissionReview, as the API server posts it.
func review(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	req := request(raw, "prod")
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	}
	b, err := json.Marshal(ar)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestHTTPHandlerServesAdmissionReviews(t *testing.T) {
	srv := httptest.NewServer(NewHTTPHandler(&Handler{Injector: testInjector(t)}))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(review(t, peerPod(t))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		t.Fatal(err)
	}
	if ar.Response == nil || !ar.Response.Allowed || ar.Response.UID != "req-1" || len(ar.Response.Patch) == 0 {
		t.Fatalf("want an allowed response with a patch for req-1, got %+v", ar.Response)
	}
}

func TestHTTPHandlerRefusesOversizedBodies(t *testing.T) {
	srv := httptest.NewServer(NewHTTPHandler(&Handler{Injector: testInjector(t)}))
	defer srv.Close()
	huge := bytes.Repeat([]byte("a"), MaxRequestBytes+1)

	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(huge))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length: status %d, want 413", resp.StatusCode)
	}

	// Without a Content-Length the read itself is capped.
	req, _ := http.NewRequest(http.MethodPost, srv.URL, struct{ *bytes.Reader }{bytes.NewReader(huge)})
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ar admissionv1.AdmissionReview
	_ = json.NewDecoder(resp.Body).Decode(&ar)
	_ = resp.Body.Close()
	if ar.Response == nil || ar.Response.Allowed || ar.Response.Result == nil || !strings.Contains(ar.Response.Result.Message, "too large") {
		t.Errorf("chunked body: want a refusal naming the size, got %+v", ar.Response)
	}
}

func TestMetricsCanBeCreatedTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second webhook in one process: %v", err)
	}
	a.observe(KindPod, ResultInjected, time.Millisecond)
	b.observe(KindPod, ResultInjected, time.Millisecond)
	if got := testutil.ToFloat64(a.admissions.WithLabelValues(KindPod, ResultInjected)); got != 2 {
		t.Errorf("shared counter = %v, want 2", got)
	}
}

func TestSlimServiceKeepsWhatDerivationReads(t *testing.T) {
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", UID: "u1", ResourceVersion: "7",
			Labels:        map[string]string{"team": "a"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096)},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Port: 443}}, ClusterIP: "10.0.0.1"},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}},
	}
	got, err := SlimService(svc)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Service{
		TypeMeta:   svc.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", UID: "u1", ResourceVersion: "7"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Type: corev1.ServiceTypeClusterIP},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slimmed Service (-want +got):\n%s", diff)
	}
	// What derivation sees is the same either way.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Labels: map[string]string{"app": "web"}}}
	full := mutate.DeriveDNSNames(pod, []corev1.Service{*svc}, "cluster.local")
	slim := mutate.DeriveDNSNames(pod, []corev1.Service{*got.(*corev1.Service)}, "cluster.local")
	if len(full) == 0 || !slices.Equal(full, slim) {
		t.Errorf("derived names differ: full %v, slim %v", full, slim)
	}
	// Anything else, such as a deletion tombstone, passes through.
	tomb := "tombstone"
	if out, _ := SlimService(tomb); out != tomb {
		t.Errorf("non-Service changed: %v", out)
	}
}

func TestDenialCausesAreCountedByField(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Injector: testInjector(t), Metrics: m}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Annotations: map[string]string{
		annotations.Enable: "true", annotations.Duration: "forever"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "a", Image: "x", SecurityContext: &corev1.SecurityContext{RunAsGroup: new(int64(1))}},
			{Name: "b", Image: "x", SecurityContext: &corev1.SecurityContext{RunAsGroup: new(int64(2))}}}}}
	// Two pods: the first is refused for its duration and, in the same
	// answer, for its containers' groups (a cause on an indexed field);
	// with a valid duration, for the groups alone.
	h.Handle(context.Background(), request(podJSON(t, pod), "ns"))
	pod.Annotations[annotations.Duration] = "48h"
	if resp := h.Handle(context.Background(), request(podJSON(t, pod), "ns")); resp.Allowed {
		t.Fatal("conflicting groups allowed")
	}
	for field, want := range map[string]float64{
		"metadata.annotations[mtls.demo/duration]":      1,
		"spec.containers[*].securityContext.runAsGroup": 2,
	} {
		if got := testutil.ToFloat64(m.causes.WithLabelValues(field)); got != want {
			t.Errorf("mtls_webhook_denial_causes_total{field=%q} = %v, want %v", field, got, want)
		}
	}
}

// podPatch only expresses additions and replacements, which is all the
// pipeline makes; anything else falls back to diffing the two encodings.
// The fallback must still give a patch that turns one pod into the other.
func TestPatchResponseFallsBackForRemovals(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{"a": "1", "b": "2"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}, {Name: "d", Image: "y"}}}}
	mutated := pod.DeepCopy()
	delete(mutated.Annotations, "b")
	mutated.Spec.Containers = mutated.Spec.Containers[:1]
	if _, ok := podPatch(pod, mutated); ok {
		t.Fatal("podPatch claims to express removals; the fallback is then dead")
	}
	resp := patchResponse(pod, mutated)
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("want an allowed fallback patch, got %+v", resp.AdmissionResponse)
	}
	got := applyPatch(t, podJSON(t, pod), resp)
	if diff := cmp.Diff(mutated, got); diff != "" {
		t.Errorf("fallback patch result (-want +got):\n%s", diff)
	}
}
