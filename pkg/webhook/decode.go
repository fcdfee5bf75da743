package webhook

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	sigsjson "sigs.k8s.io/json"

	"github.com/mtls-demo/mtls-webhook/pkg/inject"
)

// admissionPod lists the parts of a pod the inject pipeline reads or
// changes. Decoding only these (the API server has already validated the
// rest) skips the allocation-heavy parts of a pod the webhook never looks
// at: resources, ports, probes, tolerations, managed fields.
type admissionPod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		UID          types.UID         `json:"uid"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName string                     `json:"serviceAccountName"`
		OS                 *corev1.PodOS              `json:"os"`
		SecurityContext    *corev1.PodSecurityContext `json:"securityContext"`
		Volumes            []corev1.Volume            `json:"volumes"`
		InitContainers     []struct {
			Name            string                         `json:"name"`
			RestartPolicy   *corev1.ContainerRestartPolicy `json:"restartPolicy"`
			Env             []corev1.EnvVar                `json:"env"`
			VolumeMounts    []corev1.VolumeMount           `json:"volumeMounts"`
			SecurityContext *corev1.SecurityContext        `json:"securityContext"`
		} `json:"initContainers"`
		Containers []struct {
			Name            string                  `json:"name"`
			Image           string                  `json:"image"`
			Env             []corev1.EnvVar         `json:"env"`
			VolumeMounts    []corev1.VolumeMount    `json:"volumeMounts"`
			SecurityContext *corev1.SecurityContext `json:"securityContext"`
		} `json:"containers"`
	} `json:"spec"`
}

// decodePod reads the admission object into a pod that holds only the
// fields of admissionPod. It is enough for the pipeline and for podPatch,
// which only emits operations on those fields; it must not be used as the
// whole pod for anything else.
//
// Keys are matched case-sensitively, as the API server does: encoding/json
// would read "Metadata" as metadata, and the patch, whose paths are the
// canonical lower-case ones, would then not apply to the object sent.
func decodePod(raw []byte) (*corev1.Pod, error) {
	var in admissionPod
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &in); err != nil {
		return nil, err
	}
	return in.pod(), nil
}

// pod moves the decoded fields into a corev1.Pod (no copies).
func (in *admissionPod) pod() *corev1.Pod {
	pod := &corev1.Pod{}
	m := &in.Metadata
	pod.Name, pod.GenerateName, pod.Namespace, pod.UID = m.Name, m.GenerateName, m.Namespace, m.UID
	pod.Labels, pod.Annotations = m.Labels, m.Annotations
	pod.Spec.ServiceAccountName = in.Spec.ServiceAccountName
	pod.Spec.OS = in.Spec.OS
	pod.Spec.SecurityContext = in.Spec.SecurityContext
	pod.Spec.Volumes = in.Spec.Volumes
	if n := len(in.Spec.InitContainers); n > 0 {
		pod.Spec.InitContainers = make([]corev1.Container, n)
		for i, c := range in.Spec.InitContainers {
			pod.Spec.InitContainers[i] = corev1.Container{Name: c.Name, RestartPolicy: c.RestartPolicy, Env: c.Env, VolumeMounts: c.VolumeMounts, SecurityContext: c.SecurityContext}
		}
	}
	if n := len(in.Spec.Containers); n > 0 {
		pod.Spec.Containers = make([]corev1.Container, n)
		for i, c := range in.Spec.Containers {
			pod.Spec.Containers[i] = corev1.Container{Name: c.Name, Image: c.Image, Env: c.Env, VolumeMounts: c.VolumeMounts, SecurityContext: c.SecurityContext}
		}
	}
	return pod
}

// admissionWorkload is the part of a workload object the template check
// reads: its name and namespace, and the pod template, decoded as
// admissionPod (a template has a pod's metadata and spec). Replicas,
// selectors, strategies, status and managed fields are skipped unread.
type admissionWorkload struct {
	Metadata struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
		Namespace    string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		// Template is the pod template of every kind but CronJob.
		Template *admissionPod `json:"template"`
		// JobTemplate is a CronJob's: spec.jobTemplate.spec.template.
		JobTemplate *struct {
			Spec struct {
				Template *admissionPod `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

// template returns the pod template of a workload of kind, nil when the
// object has none.
func (w *admissionWorkload) template(kind string) *admissionPod {
	if kind == inject.KindCronJob {
		if w.Spec.JobTemplate == nil {
			return nil
		}
		return w.Spec.JobTemplate.Spec.Template
	}
	return w.Spec.Template
}

// owner is the name the workload's pods are named after.
func (w *admissionWorkload) owner() string {
	if w.Metadata.Name != "" {
		return w.Metadata.Name
	}
	return w.Metadata.GenerateName
}

// decodeWorkload reads a workload object as decodePod reads a pod:
// case-sensitively, only the fields of admissionWorkload.
func decodeWorkload(raw []byte) (*admissionWorkload, error) {
	var w admissionWorkload
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &w); err != nil {
		return nil, err
	}
	return &w, nil
}
