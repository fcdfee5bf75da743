package render

import (
	"bytes"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/pkg/policy"
)

func testInjector(t *testing.T) *inject.Injector {
	t.Helper()
	pol, err := policy.New(nil, false, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	d := annotations.NewDefaults()
	d.Issuer.Name = "demo-ca"
	return &inject.Injector{Defaults: d, Policy: pol,
		Options: mutate.Options{FrontendImage: "fe:1", BackendImage: "be:1", ClusterDomain: "cluster.local"}}
}

func splitDocs(s string) []string { return strings.Split(s, "\n---\n") }

func injectedSpec(t *testing.T, spec corev1.PodSpec, meta map[string]string) {
	t.Helper()
	if len(spec.Volumes) != 1 || spec.Volumes[0].CSI == nil || spec.Volumes[0].CSI.Driver != mutate.Driver {
		t.Errorf("volumes: %+v", spec.Volumes)
	}
	if len(spec.Containers[0].Env) != 4 || len(spec.Containers[0].VolumeMounts) != 1 {
		t.Errorf("container: %+v", spec.Containers[0])
	}
	if !strings.HasPrefix(meta[annotations.Status], mutate.StatusPrefix) {
		t.Errorf("status annotation: %v", meta)
	}
}

func TestRenderEveryWorkloadKind(t *testing.T) {
	in, err := os.ReadFile("testdata/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := Render(bytes.NewReader(in), &out, Options{Injector: testInjector(t), Namespace: "default"})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("err %v, errors %v", err, res.Errors)
	}
	if res.Documents != 8 || res.Injected != 6 {
		t.Errorf("documents %d injected %d, want 8 and 6", res.Documents, res.Injected)
	}
	docs := splitDocs(out.String())
	inDocs := splitDocs(string(in))
	if len(docs) != 8 {
		t.Fatalf("%d documents out", len(docs))
	}
	if strings.TrimSpace(docs[0]) != strings.TrimSpace(inDocs[0]) || strings.TrimSpace(docs[7]) != strings.TrimSpace(inDocs[7]) {
		t.Errorf("untouched documents must pass through byte for byte:\n%s\n---\n%s", docs[0], docs[7])
	}

	var pod corev1.Pod
	mustUnmarshal(t, docs[1], &pod)
	injectedSpec(t, pod.Spec, pod.Annotations)
	var sts appsv1.StatefulSet
	mustUnmarshal(t, docs[2], &sts)
	injectedSpec(t, sts.Spec.Template.Spec, sts.Spec.Template.Annotations)
	var ds appsv1.DaemonSet
	mustUnmarshal(t, docs[3], &ds)
	injectedSpec(t, ds.Spec.Template.Spec, ds.Spec.Template.Annotations)
	var rs appsv1.ReplicaSet
	mustUnmarshal(t, docs[4], &rs)
	injectedSpec(t, rs.Spec.Template.Spec, rs.Spec.Template.Annotations)
	var job batchv1.Job
	mustUnmarshal(t, docs[5], &job)
	injectedSpec(t, job.Spec.Template.Spec, job.Spec.Template.Annotations)
	var cron batchv1.CronJob
	mustUnmarshal(t, docs[6], &cron)
	injectedSpec(t, cron.Spec.JobTemplate.Spec.Template.Spec, cron.Spec.JobTemplate.Spec.Template.Annotations)

	for _, noise := range []string{"creationTimestamp", "resources: {}", "status: {}"} {
		if strings.Contains(out.String(), noise) {
			t.Errorf("output has %q, which the user never wrote", noise)
		}
	}
}

func TestRenderIsIdempotent(t *testing.T) {
	in := readExample(t)
	var once, twice bytes.Buffer
	res, err := Render(bytes.NewReader(in), &once, Options{Injector: testInjector(t), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 || res.Injected == 0 {
		t.Fatalf("first pass injected %d documents with errors %v: nothing to compare", res.Injected, res.Errors)
	}
	if _, err := Render(bytes.NewReader(once.Bytes()), &twice, Options{Injector: testInjector(t), Namespace: "default"}); err != nil {
		t.Fatal(err)
	}
	if once.String() != twice.String() {
		t.Errorf("rendering the output again changed it:\n%s\n=====\n%s", once.String(), twice.String())
	}
}

func TestRenderDerivesDNSNamesFromServicesInTheInput(t *testing.T) {
	in := readExample(t)
	var out bytes.Buffer
	if _, err := Render(bytes.NewReader(in), &out, Options{Injector: testInjector(t), Namespace: "default"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "backend-svc.demo,backend-svc.demo.svc,backend-svc.demo.svc.cluster.local") {
		t.Errorf("backend's DNS names were not derived from backend-svc:\n%s", out.String())
	}
}

func TestRenderRefusesAndPrintsNothing(t *testing.T) {
	in := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata:
      annotations: {mtls.demo/enable: "yes", mtls.demo/app: database}
    spec:
      containers: [{name: web, image: web:1}]
`
	var out bytes.Buffer
	res, err := Render(strings.NewReader(in), &out, Options{Injector: testInjector(t), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("printed output despite errors: %s", out.String())
	}
	if len(res.Errors) != 2 || !strings.HasPrefix(res.Errors[0], "Deployment shop/web (document 1): metadata.annotations[mtls.demo/enable]") {
		t.Errorf("errors: %v", res.Errors)
	}
}

// A workload that never opted in but carries a csi.cert-manager.io volume of
// its own is refused, as the cluster's validating step refuses it.
func TestRenderRefusesAHandWrittenDriverVolume(t *testing.T) {
	in := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      volumes:
      - name: certs
        csi: {driver: csi.cert-manager.io, volumeAttributes: {csi.cert-manager.io/uri-sans: "spiffe://cluster.local/ns/bank/sa/x"}}
      containers: [{name: web, image: web:1}]
`
	var out bytes.Buffer
	res, err := Render(strings.NewReader(in), &out, Options{Injector: testInjector(t), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || len(res.Errors) != 1 ||
		!strings.HasPrefix(res.Errors[0], "Deployment shop/web (document 1): spec.volumes[0].csi.driver: Forbidden: volume certs: only mtls-webhook may add") {
		t.Errorf("output %q, errors %v", out.String(), res.Errors)
	}
}

func TestRenderReportsBrokenYAML(t *testing.T) {
	_, err := Render(strings.NewReader("kind: Pod\nmetadata: [oops\n"), &bytes.Buffer{}, Options{Injector: testInjector(t)})
	if err == nil || !strings.Contains(err.Error(), "document 1") {
		t.Errorf("err = %v", err)
	}
	_, err = Render(strings.NewReader("kind: Deployment\nmetadata: {name: x}\nspec: {template: 3}\n"), &bytes.Buffer{}, Options{Injector: testInjector(t)})
	if err == nil || !strings.Contains(err.Error(), "spec.template is missing or not an object") {
		t.Errorf("err = %v", err)
	}
}

func mustUnmarshal(t *testing.T, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
}

func readExample(t *testing.T) []byte {
	t.Helper()
	in, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return in
}
