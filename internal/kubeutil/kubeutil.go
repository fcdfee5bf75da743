// Package kubeutil holds the small Kubernetes operations that the demo and
// the e2e suite both perform, written once.
package kubeutil

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// RestartedAtAnnotation is the pod template annotation `kubectl rollout
// restart` sets; a new value makes the Deployment roll out new pods.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// RolloutRestart does what `kubectl rollout restart deployment/<name>`
// does, for each name in namespace ns.
func RolloutRestart(ctx context.Context, cs kubernetes.Interface, ns string, names ...string) error {
	for _, n := range names {
		patch, err := RestartPatch(time.Now())
		if err != nil {
			return err
		}
		if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, n, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// RestartPatch is the strategic merge patch RolloutRestart sends.
func RestartPatch(at time.Time) ([]byte, error) {
	return json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{RestartedAtAnnotation: at.Format(time.RFC3339Nano)}}}}})
}
