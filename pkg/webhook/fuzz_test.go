package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/equality"
	sigsjson "sigs.k8s.io/json"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
)

// FuzzHandle sends arbitrary pod bodies through the handler. It must never
// panic; a refusal must carry a 400, 422 or 500 status; an allowed patch
// must apply to the request object the API server holds, give exactly the
// pipeline's pod, and leave exactly one mtls-certs volume.
func FuzzHandle(f *testing.F) {
	f.Add(peerPod(f))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"yes"}},"spec":{"containers":[{"name":"a"}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/app":"frontend"}},"spec":{"containers":[]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true"}},"spec":{"volumes":[{"name":"mtls-certs","emptyDir":{}}],"containers":[{"name":"a"}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/containers":"b","mtls.demo/mount-path":"/"}},"spec":{"containers":[{"name":"a","env":[{"name":"USE_MTLS","value":"false"}]}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/dns-names":"${POD_NAME}.x"},"generateName":"w-"},"spec":{"containers":[{"name":"a","volumeMounts":[{"name":"mtls-certs","mountPath":"/x"}]}]},"unknownField":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true"}},"spec":{"securityContext":{"runAsNonRoot":true,"runAsGroup":5},"containers":[{"name":"a","securityContext":{"runAsGroup":6}},{"name":"b"}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/fs-group":"7"}},"spec":{"securityContext":{"fsGroup":8},"containers":[{"name":"a"}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true"}},"spec":{"os":{"name":"windows"},"containers":[{"name":"a"}]}}`))
	f.Add([]byte(`{"metadata":{"name":"p"},"spec":{"volumes":[{"name":"x","csi":{"driver":"csi.cert-manager.io","volumeAttributes":{"csi.cert-manager.io/uri-sans":"spiffe://cluster.local/ns/b/sa/c"}}}],"containers":[{"name":"a"}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/uri-sans":"spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${POD_NAME}"}},"spec":{"containers":[{"name":"a"}]}}`))
	h := &Handler{Injector: testInjector(f)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The validating endpoint answers anything without panicking, with
		// the codes the API server expects.
		if v := (Verifier{h}).Handle(context.Background(), request(raw, "ns")); !v.Allowed {
			switch {
			case v.Result == nil:
				t.Fatal("verify: refusal without a status")
			case v.Result.Code != http.StatusBadRequest && v.Result.Code != http.StatusUnprocessableEntity:
				t.Fatalf("verify: refusal with code %d: %s", v.Result.Code, v.Result.Message)
			}
		}
		resp := h.Handle(context.Background(), request(raw, "ns"))
		if !resp.Allowed {
			if resp.Result == nil {
				t.Fatal("refusal without a status")
			}
			switch resp.Result.Code {
			case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusInternalServerError:
			default:
				t.Fatalf("refusal with code %d: %s", resp.Result.Code, resp.Result.Message)
			}
			return
		}
		ops, err := patchBytes(resp)
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) == 0 {
			return
		}
		var in corev1.Pod
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &in); err != nil {
			// Not a pod the API server could have sent: it decodes and
			// validates every object before admission. The handler reads
			// only the fields it needs, so it may still patch; nothing more
			// can be compared.
			return
		}
		patch, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		out, err := patch.Apply(raw)
		if err != nil {
			t.Fatalf("patch does not apply to the request object: %v\npatch: %s", err, ops)
		}
		var pod corev1.Pod
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(out, &pod); err != nil {
			t.Fatalf("patched object does not decode: %v", err)
		}
		if in.Namespace == "" {
			in.Namespace = "ns"
		}
		want := h.Injector.Inject(&in, nil)
		if !want.Injected {
			t.Fatalf("the handler patched a pod the pipeline refuses: %v", want.Errors)
		}
		if pod.Namespace == "" {
			pod.Namespace = "ns"
		}
		if !equality.Semantic.DeepEqual(want.Pod, &pod) {
			t.Fatalf("patched request differs from the pipeline's pod:\n%s", cmp.Diff(want.Pod, &pod))
		}
		n := 0
		for _, v := range pod.Spec.Volumes {
			if v.Name == mutate.VolumeName {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d %s volumes after the patch", n, mutate.VolumeName)
		}
		// Whatever the mutating endpoint writes, the validating one accepts.
		if errs := h.Injector.Verify(&pod); len(errs) > 0 {
			t.Fatalf("the validating endpoint refuses what the mutating one wrote: %v", errs)
		}
	})
}

// FuzzWorkloads sends arbitrary workload objects, as every kind, at create
// and at update, through /validate-workloads. It must never panic; a
// refusal must carry a 400 or a 422 whose causes all lie on the kind's
// template path; any JSON object must get controller-runtime's answer; and
// an allowed template must be one the pipeline injects.
func FuzzWorkloads(f *testing.F) {
	f.Add(peerDeployment(f), uint8(0), false)
	f.Add([]byte(`{"metadata":{"name":"w"},"spec":{"template":{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/key-size":"1000","mtls.demo/containers":"ghost"}},"spec":{"containers":[{"name":"a"}]}}}}`), uint8(1), false)
	f.Add([]byte(`{"metadata":{"name":"w"},"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"annotations":{"mtls.demo/enable":"yes"}},"spec":{"containers":[]}}}}}}`), uint8(5), true)
	f.Add([]byte(`{"metadata":{"name":"w"},"spec":{"template":{"metadata":{"annotations":{"mtls.demo/enable":true}}}}}`), uint8(2), false)
	f.Add([]byte(`{"spec":{"template":null}}`), uint8(3), true)
	f.Add([]byte(`{"spec":{"template":{"metadata":{"annotations":{"mtls.demo/enable":"true","mtls.demo/mount-path":"/etc"}},"spec":{"os":{"name":"windows"},"containers":[{"name":"a","volumeMounts":[{"name":"x","mountPath":"/etc"}]}]}}}}`), uint8(4), false)
	f.Add([]byte(`null`), uint8(0), true)
	h := &Handler{Injector: testInjector(f)}
	lean, reference := NewWorkloadHTTPHandler(h), referenceWorkloadHandler(h)
	kinds := []string{inject.KindDeployment, inject.KindStatefulSet, inject.KindDaemonSet, inject.KindReplicaSet, inject.KindJob, inject.KindCronJob}
	f.Fuzz(func(t *testing.T, object []byte, which uint8, update bool) {
		kind := kinds[int(which)%len(kinds)]
		res := map[string][2]string{
			inject.KindDeployment: {"apps", "deployments"}, inject.KindStatefulSet: {"apps", "statefulsets"},
			inject.KindDaemonSet: {"apps", "daemonsets"}, inject.KindReplicaSet: {"apps", "replicasets"},
			inject.KindJob: {"batch", "jobs"}, inject.KindCronJob: {"batch", "cronjobs"},
		}[kind]
		op, old := "CREATE", []byte(nil)
		if update {
			op, old = "UPDATE", []byte(`{"spec":{}}`)
		}
		body := workloadReview(res[0], res[1], "", op, "ns", object, old)
		got, w := post(t, lean, body, "application/json")
		if got == nil || got.Response == nil || got.Response.Result == nil {
			t.Fatalf("no AdmissionReview with a status: HTTP %d %s", w.Code, w.Body.String())
		}
		r := got.Response
		if !json.Valid(object) {
			if r.Allowed || r.Result.Code != http.StatusBadRequest {
				t.Fatalf("invalid JSON answered %+v", r)
			}
			return
		}
		want, _ := post(t, reference, body, "application/json")
		sameAnswer(t, got, want)
		path, _ := inject.TemplatePath(kind)
		switch {
		case !r.Allowed && r.Result.Code == http.StatusUnprocessableEntity:
			if r.Result.Details == nil || len(r.Result.Details.Causes) == 0 {
				t.Fatalf("a 422 without causes: %+v", r.Result)
			}
			for _, c := range r.Result.Details.Causes {
				if !strings.HasPrefix(c.Field, path.String()+".") {
					t.Fatalf("cause %q is not on %s", c.Field, path)
				}
			}
		case !r.Allowed && r.Result.Code != http.StatusBadRequest:
			t.Fatalf("refusal with code %d: %s", r.Result.Code, r.Result.Message)
		case r.Allowed:
			wl, err := decodeWorkload(object)
			if err != nil || wl == nil || wl.template(kind) == nil || !annotations.OptedIn(wl.template(kind).Metadata.Annotations) {
				return // nothing was checked
			}
			tmpl := wl.template(kind).pod()
			ns := wl.Metadata.Namespace
			if ns == "" {
				ns = "ns"
			}
			pod := inject.PodFromTemplate(ns, wl.owner(), &corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels, Annotations: tmpl.Annotations}, Spec: tmpl.Spec})
			if out := h.Injector.Inject(pod, nil); !out.Injected {
				t.Fatalf("allowed a template whose pod the pipeline refuses: %v", out.Errors)
			}
		}
	})
}
