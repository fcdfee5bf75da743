// Package render shows the webhook's work without a cluster: it reads
// multi-document YAML, runs the same inject pipeline as the admission
// handler on every pod (template), and writes the documents back with only
// the injected changes applied. Documents that are not workloads, or whose
// pods did not opt in, pass through byte for byte.
package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	gomodjsonpatch "gomodules.xyz/jsonpatch/v2"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/mtls-demo/mtls-webhook/pkg/inject"
)

// templatePaths says where each supported kind keeps its pod template, as
// JSON object keys from the document's root. A Pod is its own template.
var templatePaths = map[string][]string{
	"Pod":         nil,
	"Deployment":  {"spec", "template"},
	"StatefulSet": {"spec", "template"},
	"DaemonSet":   {"spec", "template"},
	"ReplicaSet":  {"spec", "template"},
	"Job":         {"spec", "template"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template"},
}

// Options configure a render run.
type Options struct {
	Injector *inject.Injector
	// Services add to the Services found in the input itself, for DNS
	// names derived from selectors.
	Services []corev1.Service
	// Namespace applies to documents that name none.
	Namespace string
}

// Result summarises a run.
type Result struct {
	Documents int
	Injected  int
	// Warnings and Errors are prefixed with the document they concern.
	Warnings []string
	Errors   []string
}

type document struct {
	raw  []byte
	obj  map[string]any
	kind string
	name string
	ns   string
}

// Render reads documents from in and writes them to out, injected. When any
// document is refused, nothing is written and Result.Errors says why.
func Render(in io.Reader, out io.Writer, o Options) (Result, error) {
	docs, err := readDocuments(in)
	if err != nil {
		return Result{}, err
	}
	found, err := servicesIn(docs, o.Namespace)
	if err != nil {
		return Result{}, err
	}
	services := append(append([]corev1.Service(nil), o.Services...), found...)

	res := Result{Documents: len(docs)}
	rendered := make([][]byte, len(docs))
	for i, d := range docs {
		rendered[i] = d.raw
		path, ok := templatePaths[d.kind]
		if !ok {
			continue
		}
		label := fmt.Sprintf("%s %s/%s (document %d)", d.kind, d.ns, d.name, i+1)
		if d.ns == "" {
			label = fmt.Sprintf("%s %s/%s (document %d)", d.kind, o.Namespace, d.name, i+1)
		}
		doc, injected, warnings, errs, err := injectDocument(d, path, services, o)
		for _, w := range warnings {
			res.Warnings = append(res.Warnings, label+": "+w)
		}
		for _, e := range errs {
			res.Errors = append(res.Errors, label+": "+e)
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", label, err)
		}
		if injected {
			res.Injected++
			rendered[i] = doc
		}
	}
	if len(res.Errors) > 0 {
		return res, nil
	}
	w := bufio.NewWriter(out)
	for i, b := range rendered {
		if i > 0 {
			_, _ = w.WriteString("---\n")
		}
		_, _ = w.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			_ = w.WriteByte('\n')
		}
	}
	return res, w.Flush()
}

// injectDocument runs the pipeline on the template at path inside d and
// returns the document with the resulting changes applied.
func injectDocument(d document, path []string, services []corev1.Service, o Options) ([]byte, bool, []string, []string, error) {
	tmplObj, err := lookup(d.obj, path)
	if err != nil {
		return nil, false, nil, nil, err
	}
	tmplJSON := mustJSON(tmplObj)
	var tmpl corev1.PodTemplateSpec
	// Exact key matching, as the API server does: "Metadata" is not metadata.
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(tmplJSON, &tmpl); err != nil {
		return nil, false, nil, nil, fmt.Errorf("decoding the pod template: %w", err)
	}
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	if pod.Namespace == "" {
		pod.Namespace = d.ns
	}
	if pod.Namespace == "" {
		pod.Namespace = o.Namespace
	}
	if pod.Name == "" && pod.GenerateName == "" && d.kind != "Pod" {
		pod.GenerateName = d.name + "-"
	}

	outcome := o.Injector.Inject(pod, services)
	var errs []string
	for _, e := range outcome.Errors {
		errs = append(errs, e.Error())
	}
	if !outcome.Injected {
		if len(errs) == 0 {
			// Not opted in: the pod goes on as written, so the cluster's
			// validating step decides: a csi.cert-manager.io volume of its
			// own is refused, as /validate-pods would.
			for _, e := range o.Injector.Verify(pod) {
				errs = append(errs, e.Error())
			}
		}
		return nil, false, outcome.Warnings, errs, nil
	}

	// Diff the typed template before and after, then apply only that diff
	// to the user's document, so defaults and empty fields the Go types
	// would add never show up in the output. The namespace filled in for the
	// pipeline is not a change.
	pod.Namespace = tmpl.Namespace
	outcome.Pod.Namespace = tmpl.Namespace
	before := mustJSON(corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec})
	after := mustJSON(corev1.PodTemplateSpec{ObjectMeta: outcome.Pod.ObjectMeta, Spec: outcome.Pod.Spec})
	ops, err := gomodjsonpatch.CreatePatch(before, after)
	if err != nil {
		return nil, false, nil, nil, fmt.Errorf("diffing the template: %w", err)
	}
	patchJSON := mustJSON(ops)
	patch, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		return nil, false, nil, nil, fmt.Errorf("decoding the patch: %w", err)
	}
	patched, err := patch.Apply(tmplJSON)
	if err != nil {
		return nil, false, nil, nil, fmt.Errorf("applying the patch: %w", err)
	}
	var newTmpl any
	if err := json.Unmarshal(patched, &newTmpl); err != nil {
		return nil, false, nil, nil, err
	}
	root := d.obj
	if len(path) == 0 {
		root = newTmpl.(map[string]any)
	} else if err := set(root, path, newTmpl); err != nil {
		return nil, false, nil, nil, err
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		return nil, false, nil, nil, err
	}
	return b, true, outcome.Warnings, nil, nil
}

func readDocuments(in io.Reader) ([]document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var docs []document
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML document %d: %w", len(docs)+1, err)
		}
		raw = bytes.TrimPrefix(raw, []byte("---\n"))
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", len(docs)+1, err)
		}
		d := document{raw: raw, obj: obj}
		d.kind, _ = obj["kind"].(string)
		if md, ok := obj["metadata"].(map[string]any); ok {
			d.name, _ = md["name"].(string)
			d.ns, _ = md["namespace"].(string)
		}
		docs = append(docs, d)
	}
}

func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func lookup(obj map[string]any, path []string) (map[string]any, error) {
	cur := obj
	for i, k := range path {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is missing or not an object", strings.Join(path[:i+1], "."))
		}
		cur = next
	}
	return cur, nil
}

func set(obj map[string]any, path []string, v any) error {
	parent, err := lookup(obj, path[:len(path)-1])
	if err != nil {
		return err
	}
	parent[path[len(path)-1]] = v
	return nil
}

// mustJSON marshals values that came from JSON or from typed API objects;
// both always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("render: marshalling %T: %v", v, err))
	}
	return b
}

// ReadServices reads the Services among the documents of in, for
// --services; namespace fills in a missing one, as for Services in the
// rendered input itself.
func ReadServices(in io.Reader, namespace string) ([]corev1.Service, error) {
	docs, err := readDocuments(in)
	if err != nil {
		return nil, err
	}
	return servicesIn(docs, namespace)
}

// servicesIn decodes the Service documents; namespace fills in a missing one.
func servicesIn(docs []document, namespace string) ([]corev1.Service, error) {
	var out []corev1.Service
	for _, d := range docs {
		if d.kind != "Service" {
			continue
		}
		var svc corev1.Service
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(mustJSON(d.obj), &svc); err != nil {
			return nil, fmt.Errorf("service %s: %w", d.name, err)
		}
		if svc.Namespace == "" {
			svc.Namespace = namespace
		}
		out = append(out, svc)
	}
	return out, nil
}
