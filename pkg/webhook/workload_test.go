package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/mtls-demo/mtls-webhook/pkg/inject"
)

// referenceWorkloadHandler is controller-runtime's generic admission.Webhook
// around Workloads: what the one-pass server must answer like.
func referenceWorkloadHandler(h *Handler) http.Handler {
	return limitBody(&ctrlwebhook.Admission{Handler: Workloads{h}}, MaxRequestBytes)
}

// workloadReview builds an AdmissionReview for a workload, inserting the
// objects verbatim (old may be nil).
func workloadReview(group, resource, subResource, operation, ns string, object, old []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"req-w",`)
	b.WriteString(`"resource":{"group":"` + group + `","version":"v1","resource":"` + resource + `"},`)
	if subResource != "" {
		b.WriteString(`"subResource":"` + subResource + `",`)
	}
	b.WriteString(`"operation":"` + operation + `","namespace":"` + ns + `","userInfo":{"username":"kubernetes-admin"}`)
	if object != nil {
		b.WriteString(`,"object":`)
		b.Write(object)
	}
	if old != nil {
		b.WriteString(`,"oldObject":`)
		b.Write(old)
	}
	b.WriteString(`,"dryRun":false}}`)
	return b.Bytes()
}

// workloadCase is one of pkg/inject's workload golden inputs, as JSON.
type workloadCase struct {
	name     string
	kind     string
	raw      []byte
	obj      map[string]any
	services []corev1.Service
}

var resourceOf = map[string][2]string{
	inject.KindDeployment: {"apps", "deployments"}, inject.KindStatefulSet: {"apps", "statefulsets"},
	inject.KindDaemonSet: {"apps", "daemonsets"}, inject.KindReplicaSet: {"apps", "replicasets"},
	inject.KindJob: {"batch", "jobs"}, inject.KindCronJob: {"batch", "cronjobs"},
}

func workloadCases(t *testing.T) []workloadCase {
	t.Helper()
	files, err := filepath.Glob("../../internal/cli/testdata/pipeline/workloads/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []workloadCase
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.yaml") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := workloadCase{name: strings.TrimSuffix(filepath.Base(f), ".yaml")}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatal(err)
			}
			switch kind, _ := obj["kind"].(string); kind {
			case "":
			case "Service":
				var svc corev1.Service
				if err := yaml.UnmarshalStrict(doc, &svc); err != nil {
					t.Fatal(err)
				}
				c.services = append(c.services, svc)
			default:
				if c.raw, err = yaml.YAMLToJSON(doc); err != nil {
					t.Fatal(err)
				}
				c.kind, c.obj = kind, obj
			}
		}
		cases = append(cases, c)
	}
	if len(cases) < 6 {
		t.Fatalf("found %d workload cases, want one per kind at least", len(cases))
	}
	return cases
}

func (c workloadCase) handler(t *testing.T) *Handler {
	objs := make([]client.Object, len(c.services))
	for i := range c.services {
		objs[i] = &c.services[i]
	}
	inj := testInjector(t)
	inj.Defaults.Issuer.Name = "default-ca"
	return &Handler{Injector: inj, Reader: fakeReader(t, objs...), ServicesIndexed: true}
}

// expected is the pipeline's own verdict on the case's template.
func (c workloadCase) expected(t *testing.T, h *Handler) inject.Outcome {
	t.Helper()
	w, err := decodeWorkload(c.raw)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := w.template(c.kind).pod()
	path, _ := inject.TemplatePath(c.kind)
	pod := inject.PodFromTemplate(w.Metadata.Namespace, w.Metadata.Name, &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels, Annotations: tmpl.Annotations}, Spec: tmpl.Spec})
	return h.Injector.CheckTemplate(pod, path, c.services)
}

// TestWorkloadsAnswerAsThePipeline: for every workload case, at CREATE and
// at an UPDATE that changes the template, /validate-workloads refuses
// exactly when the pipeline refuses the pod the template makes, with a 422
// naming the kind, the workload and every cause on its template path, and
// passes the pipeline's warnings; its answer is controller-runtime's, byte
// for byte. An UPDATE that keeps the template is let through unchecked.
func TestWorkloadsAnswerAsThePipeline(t *testing.T) {
	for _, c := range workloadCases(t) {
		t.Run(c.name, func(t *testing.T) {
			h := c.handler(t)
			want := c.expected(t, h)
			res := resourceOf[c.kind]
			ns := c.obj["metadata"].(map[string]any)["namespace"].(string)
			old := withOldTemplate(t, c.raw, c.kind)
			for _, op := range []struct {
				name string
				body []byte
			}{
				{"create", workloadReview(res[0], res[1], "", "CREATE", ns, c.raw, nil)},
				{"update", workloadReview(res[0], res[1], "", "UPDATE", ns, c.raw, old)},
			} {
				t.Run(op.name, func(t *testing.T) {
					got, w := post(t, NewWorkloadHTTPHandler(h), op.body, "application/json")
					if got == nil {
						t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
					}
					ref, _ := post(t, referenceWorkloadHandler(h), op.body, "application/json")
					sameAnswer(t, got, ref)
					r := got.Response
					if string(r.UID) != "req-w" {
						t.Errorf("uid %q", r.UID)
					}
					if diff := cmp.Diff(want.Warnings, r.Warnings); diff != "" {
						t.Errorf("warnings (-pipeline +got):\n%s", diff)
					}
					if len(want.Errors) == 0 {
						if !r.Allowed {
							t.Fatalf("refused what the pipeline accepts: %+v", r.Result)
						}
						return
					}
					if r.Allowed || r.Result == nil || r.Result.Code != http.StatusUnprocessableEntity || r.Result.Reason != metav1.StatusReasonInvalid {
						t.Fatalf("want a 422 Invalid refusal, got %+v", r)
					}
					d := r.Result.Details
					if d == nil || d.Kind != c.kind || d.Group != res[0] || d.Name != c.obj["metadata"].(map[string]any)["name"] {
						t.Errorf("status details %+v, want %s.%s", d, c.kind, res[0])
					}
					if d != nil && len(d.Causes) != len(want.Errors) {
						t.Fatalf("%d causes, pipeline %d: %v", len(d.Causes), len(want.Errors), d.Causes)
					}
					for i, e := range want.Errors {
						if d.Causes[i].Field != e.Field || !strings.Contains(r.Result.Message, e.Field) {
							t.Errorf("cause %d on %q, pipeline %q; message %q", i, d.Causes[i].Field, e.Field, r.Result.Message)
						}
					}
				})
			}
			unchanged, _ := post(t, NewWorkloadHTTPHandler(h), workloadReview(res[0], res[1], "", "UPDATE", ns, c.raw, c.raw), "application/json")
			if unchanged == nil || !unchanged.Response.Allowed || len(unchanged.Response.Warnings) != 0 {
				t.Errorf("an update that keeps the template: %+v", unchanged)
			}
		})
	}
}

func TestWorkloadEdgeCases(t *testing.T) {
	dep := func(ann string) []byte {
		return []byte(`{"metadata":{"name":"web","namespace":"shop"},"spec":{"template":{"metadata":{"annotations":` + ann +
			`},"spec":{"containers":[{"name":"web","image":"x"}]}}}}`)
	}
	bad := dep(`{"mtls.demo/enable":"true","mtls.demo/key-size":"1000"}`)
	tests := []struct {
		name    string
		body    []byte
		allowed bool
		code    int32
		message string
		// sameAsReference: controller-runtime answers exactly this too.
		sameAsReference bool
	}{
		{name: "a bad template is refused on its path", body: workloadReview("apps", "deployments", "", "CREATE", "shop", bad, nil),
			code: 422, message: `Deployment.apps "web" is invalid: spec.template.metadata.annotations[mtls.demo/key-size]: Invalid value: "1000"`, sameAsReference: true},
		{name: "the request's namespace stands in for the object's", body: workloadReview("apps", "deployments", "", "CREATE", "other",
			[]byte(`{"metadata":{"name":"web"},"spec":{"template":{"metadata":{"annotations":{"mtls.demo/enable":"true"}},"spec":{"containers":[{"name":"web","image":"x"}]}}}}`), nil),
			allowed: true, code: 200, sameAsReference: true},
		{name: "a template that did not opt in is allowed", body: workloadReview("apps", "deployments", "", "CREATE", "shop", dep(`{"mtls.demo/key-size":"1000"}`), nil),
			allowed: true, code: 200, message: "has not opted in", sameAsReference: true},
		{name: "enable false is allowed", body: workloadReview("apps", "deployments", "", "CREATE", "shop", dep(`{"mtls.demo/enable":"false","mtls.demo/key-size":"1000"}`), nil),
			allowed: true, code: 200, message: "has not opted in", sameAsReference: true},
		{name: "a workload without a template is allowed", body: workloadReview("batch", "cronjobs", "", "CREATE", "shop", bad, nil),
			allowed: true, code: 200, message: "has no pod template", sameAsReference: true},
		{name: "the scale subresource is allowed", body: workloadReview("apps", "deployments", "scale", "UPDATE", "shop", []byte(`{"spec":{"replicas":"x"}}`), nil),
			allowed: true, code: 200, message: "only checks the pod templates", sameAsReference: true},
		{name: "a delete is allowed", body: workloadReview("apps", "deployments", "", "DELETE", "shop", nil, bad),
			allowed: true, code: 200, message: "only checks the pod templates", sameAsReference: true},
		{name: "a pod is not a workload", body: reviewOf(reviewV1, "pods", "CREATE", "shop", bad),
			allowed: true, code: 200, message: "only checks the pod templates", sameAsReference: true},
		{name: "apps/v1beta2 is not what the chart sends", body: []byte(strings.Replace(string(workloadReview("apps", "deployments", "", "CREATE", "shop", bad, nil)), `"version":"v1"`, `"version":"v1beta2"`, 1)),
			allowed: true, code: 200, sameAsReference: true},
		{name: "an annotation that is not a string is a 400", body: workloadReview("apps", "deployments", "", "CREATE", "shop", dep(`{"mtls.demo/enable":true}`), nil),
			code: 400, message: "decoding the Deployment: ", sameAsReference: true},
		{name: "an old object of the wrong shape is a 400", body: workloadReview("apps", "deployments", "", "UPDATE", "shop", bad, []byte(`{"spec":{"template":[]}}`)),
			code: 400, message: "decoding the old Deployment: ", sameAsReference: true},
		{name: "a null object is a 400", body: workloadReview("apps", "deployments", "", "CREATE", "shop", []byte(`null`), nil),
			code: 400, message: "carries no object", sameAsReference: true},
		{name: "no object is a 400", body: workloadReview("apps", "deployments", "", "CREATE", "shop", nil, nil),
			code: 400, message: "carries no object", sameAsReference: true},
		{name: "a body that is not JSON is a 400", body: []byte(`{"request":`), code: 400, message: "decoding the admission review"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{Injector: testInjector(t)}
			got, w := post(t, NewWorkloadHTTPHandler(h), tc.body, "application/json")
			if got == nil || got.Response == nil || got.Response.Result == nil {
				t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
			}
			r := got.Response
			if r.Allowed != tc.allowed || r.Result.Code != tc.code {
				t.Errorf("allowed=%v code=%d, want %v %d (%s)", r.Allowed, r.Result.Code, tc.allowed, tc.code, r.Result.Message)
			}
			if !strings.Contains(r.Result.Message, tc.message) {
				t.Errorf("message %q lacks %q", r.Result.Message, tc.message)
			}
			if tc.sameAsReference {
				want, _ := post(t, referenceWorkloadHandler(h), tc.body, "application/json")
				sameAnswer(t, got, want)
			}
		})
	}
}

// TestWorkloadIssuerCheck: the Issuer check runs on templates as on pods,
// its warning and its refusal on the template's path.
func TestWorkloadIssuerCheck(t *testing.T) {
	raw := []byte(`{"metadata":{"name":"sync","namespace":"shop"},"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"annotations":` +
		`{"mtls.demo/enable":"true","mtls.demo/issuer":"missing","mtls.demo/dns-names":"sync.shop.svc"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}}}`)
	body := workloadReview("batch", "cronjobs", "", "CREATE", "shop", raw, nil)
	for _, mode := range []IssuerCheckMode{IssuerCheckWarn, IssuerCheckDeny} {
		t.Run(string(mode), func(t *testing.T) {
			h := &Handler{Injector: testInjector(t), Issuers: &IssuerChecker{Reader: fakeReader(t), Mode: mode}}
			got, _ := post(t, NewWorkloadHTTPHandler(h), body, "application/json")
			r := got.Response
			if mode == IssuerCheckWarn {
				if !r.Allowed || len(r.Warnings) != 1 || !strings.HasPrefix(r.Warnings[0], "spec.jobTemplate.spec.template: Issuer shop/missing does not exist") {
					t.Errorf("allowed=%v warnings %q", r.Allowed, r.Warnings)
				}
				return
			}
			if r.Allowed || !strings.Contains(r.Result.Message, "spec.jobTemplate.spec.template.metadata.annotations[mtls.demo/issuer]") {
				t.Errorf("allowed=%v %+v", r.Allowed, r.Result)
			}
		})
	}
	// A Ready Issuer: nothing to say.
	h := &Handler{Injector: testInjector(t), Issuers: &IssuerChecker{Reader: fakeReader(t, readyIssuer("shop", "missing")), Mode: IssuerCheckDeny}}
	if got, _ := post(t, NewWorkloadHTTPHandler(h), body, "application/json"); !got.Response.Allowed || len(got.Response.Warnings) != 0 {
		t.Errorf("with the Issuer Ready: %+v", got.Response)
	}
}

// TestWorkloadServicesAreLookedUp: DNS names come from the Services that
// select the template's labels, as for pods, through the index: with one,
// no "no Service" warning.
func TestWorkloadServicesAreLookedUp(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	raw := []byte(`{"metadata":{"name":"web","namespace":"shop"},"spec":{"template":{"metadata":{"labels":{"app":"web"},"annotations":` +
		`{"mtls.demo/enable":"true"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`)
	body := workloadReview("apps", "statefulsets", "", "CREATE", "shop", raw, nil)
	for _, indexed := range []bool{false, true} {
		h := &Handler{Injector: testInjector(t), Reader: fakeReader(t, svc), ServicesIndexed: indexed}
		got, _ := post(t, NewWorkloadHTTPHandler(h), body, "application/json")
		if !got.Response.Allowed || len(got.Response.Warnings) != 0 {
			t.Errorf("indexed=%v: %+v", indexed, got.Response)
		}
	}
	h := &Handler{Injector: testInjector(t), Reader: fakeReader(t)}
	got, _ := post(t, NewWorkloadHTTPHandler(h), body, "application/json")
	if !got.Response.Allowed || len(got.Response.Warnings) != 1 || !strings.Contains(got.Response.Warnings[0], "spec.template: no Service in namespace shop selects this pod") {
		t.Errorf("without the Service: %+v", got.Response)
	}
}

// TestAdmissionsAreCountedByKind: mtls_webhook_admissions_total carries
// the object's kind next to the result, for both endpoints.
func TestAdmissionsAreCountedByKind(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Injector: testInjector(t), Metrics: m}
	bad := []byte(`{"metadata":{"name":"j","namespace":"shop"},"spec":{"template":{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/duration":"x"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`)
	good := bytes.Replace(bad, []byte(`"x"}`), []byte(`"48h"}`), 1)
	wl := NewWorkloadHTTPHandler(h)
	post(t, wl, workloadReview("batch", "jobs", "", "CREATE", "shop", bad, nil), "application/json")
	post(t, wl, workloadReview("batch", "jobs", "", "CREATE", "shop", good, nil), "application/json")
	post(t, wl, workloadReview("apps", "daemonsets", "", "UPDATE", "shop", good, good), "application/json")
	post(t, wl, []byte(`{`), "application/json")
	post(t, NewHTTPHandler(h), review(t, peerPod(t)), "application/json")
	Workloads{h}.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("x"), Resource: metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"},
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: bad}}})
	for _, c := range []struct {
		kind, result string
		want         float64
	}{
		{inject.KindJob, ResultDenied, 1},
		{inject.KindJob, ResultAllowed, 1},
		{inject.KindDaemonSet, ResultSkipped, 1},
		{inject.KindReplicaSet, ResultDenied, 1},
		{kindOther, ResultError, 1},
		{KindPod, ResultInjected, 1},
		{inject.KindDeployment, ResultDenied, 0},
	} {
		if got := testutil.ToFloat64(m.admissions.WithLabelValues(c.kind, c.result)); got != c.want {
			t.Errorf("admissions{kind=%q,result=%q} = %v, want %v", c.kind, c.result, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.causes.WithLabelValues("spec.template.metadata.annotations[mtls.demo/duration]")); got != 2 {
		t.Errorf("denial causes on the template's duration = %v, want 2", got)
	}
}

// TestWorkloadDecodeReadsOnlyTheTemplate: the partial decode gives the
// same template pod as decoding the typed Deployment, for the benchmark's
// Deployment, so the pipeline sees what it would see on the full object.
func TestWorkloadDecodeReadsOnlyTheTemplate(t *testing.T) {
	raw := peerDeployment(t)
	w, err := decodeWorkload(raw)
	if err != nil {
		t.Fatal(err)
	}
	var typed appsv1.Deployment
	if err := yaml.Unmarshal(raw, &typed); err != nil {
		t.Fatal(err)
	}
	inj := testInjector(t)
	path, _ := inject.TemplatePath(inject.KindDeployment)
	tmpl := w.template(inject.KindDeployment).pod()
	partial := inj.CheckTemplate(inject.PodFromTemplate(w.Metadata.Namespace, w.owner(), &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels, Annotations: tmpl.Annotations}, Spec: tmpl.Spec}), path, nil)
	full := inj.CheckTemplate(inject.PodFromTemplate(typed.Namespace, typed.Name, &typed.Spec.Template), path, nil)
	if !partial.Injected || !full.Injected {
		t.Fatalf("the peer Deployment is refused: %v / %v", partial.Errors, full.Errors)
	}
	if diff := cmp.Diff(full.Attributes, partial.Attributes); diff != "" {
		t.Errorf("attributes (-typed +partial):\n%s", diff)
	}
	if diff := cmp.Diff(full.Warnings, partial.Warnings); diff != "" {
		t.Errorf("warnings (-typed +partial):\n%s", diff)
	}
}

// withOldTemplate returns raw with a label of its pod template changed:
// the object before an update of the template.
func withOldTemplate(t *testing.T, raw []byte, kind string) []byte {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	path, _ := inject.TemplatePath(kind)
	m := obj
	for _, key := range strings.Split(path.String()+".metadata", ".") {
		next, ok := m[key].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[key] = next
		}
		m = next
	}
	m["labels"] = map[string]any{"revision": "old"}
	out, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func peerDeployment(tb testing.TB) []byte {
	tb.Helper()
	raw, err := os.ReadFile("testdata/peer-deployment.json")
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func readyIssuer(ns, name string) client.Object {
	return &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Status: cmapi.IssuerStatus{Conditions: []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue}}}}
}
