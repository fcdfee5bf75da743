package inject

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The workload kinds whose pod template is checked when the workload is
// applied, so that a bad annotation is refused by `kubectl apply` rather
// than in the events of a ReplicaSet nobody looks at.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindReplicaSet  = "ReplicaSet"
	KindJob         = "Job"
	KindCronJob     = "CronJob"
)

var (
	templatePath    = field.NewPath("spec", "template")
	jobTemplatePath = field.NewPath("spec", "jobTemplate", "spec", "template")
)

// TemplatePath returns where a workload kind keeps its pod template:
// spec.template, or spec.jobTemplate.spec.template for a CronJob. ok is
// false for a kind that is not a workload of this package.
func TemplatePath(kind string) (path *field.Path, ok bool) {
	switch kind {
	case KindDeployment, KindStatefulSet, KindDaemonSet, KindReplicaSet, KindJob:
		return templatePath, true
	case KindCronJob:
		return jobTemplatePath, true
	}
	return nil, false
}

// TemplateOf returns the kind, object metadata and pod template of a typed
// apps/v1 or batch/v1 workload; ok is false for anything else.
func TemplateOf(obj runtime.Object) (kind string, meta *metav1.ObjectMeta, tmpl *corev1.PodTemplateSpec, ok bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return KindDeployment, &o.ObjectMeta, &o.Spec.Template, true
	case *appsv1.StatefulSet:
		return KindStatefulSet, &o.ObjectMeta, &o.Spec.Template, true
	case *appsv1.DaemonSet:
		return KindDaemonSet, &o.ObjectMeta, &o.Spec.Template, true
	case *appsv1.ReplicaSet:
		return KindReplicaSet, &o.ObjectMeta, &o.Spec.Template, true
	case *batchv1.Job:
		return KindJob, &o.ObjectMeta, &o.Spec.Template, true
	case *batchv1.CronJob:
		return KindCronJob, &o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template, true
	}
	return "", nil, nil, false
}

// PodFromTemplate is the pod a workload's controller creates from tmpl, as
// far as it is known when the workload is applied: the template's labels,
// annotations and spec, in the workload's namespace, named from the
// workload (every controller names its pods "<owner>-" and a suffix that
// admission cannot know: a hash, an ordinal, a random string). The pod
// shares tmpl's maps and lists; the pipeline never changes its input.
func PodFromTemplate(namespace, owner string, tmpl *corev1.PodTemplateSpec) *corev1.Pod {
	pod := &corev1.Pod{Spec: tmpl.Spec}
	pod.Namespace = namespace
	pod.Labels, pod.Annotations = tmpl.Labels, tmpl.Annotations
	if owner != "" && !strings.HasSuffix(owner, "-") {
		owner += "-"
	}
	pod.GenerateName = owner
	return pod
}

// CheckTemplate runs the pipeline on the pod a workload's template makes
// (see PodFromTemplate), exactly as on a pod at its creation, and moves
// every error onto the template's path in the workload, so that the user
// is pointed at spec.template.metadata.annotations[mtls.demo/key-size]
// rather than at a field of a pod that does not exist yet. Warnings are
// prefixed with that path likewise.
func (in *Injector) CheckTemplate(pod *corev1.Pod, path *field.Path, services []corev1.Service) Outcome {
	out := in.Inject(pod, services)
	out.Errors = Rebase(out.Errors, path)
	prefix := path.String() + ": "
	for i, w := range out.Warnings {
		out.Warnings[i] = prefix + w
	}
	return out
}

// Rebase returns copies of errs whose paths, relative to a pod, are moved
// under path (a pod template inside a workload).
func Rebase(errs field.ErrorList, path *field.Path) field.ErrorList {
	if len(errs) == 0 {
		return errs
	}
	base := path.String()
	out := make(field.ErrorList, len(errs))
	for i, e := range errs {
		c := *e
		if c.Field == "" {
			c.Field = base
		} else {
			c.Field = base + "." + c.Field
		}
		out[i] = &c
	}
	return out
}
