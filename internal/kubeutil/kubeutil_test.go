package kubeutil

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRolloutRestartSetsTheTemplateAnnotation(t *testing.T) {
	cs := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}})
	before := time.Now().Add(-time.Second)
	if err := RolloutRestart(context.Background(), cs, "shop", "web"); err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments("shop").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, d.Spec.Template.Annotations[RestartedAtAnnotation])
	if err != nil || at.Before(before) {
		t.Fatalf("restartedAt = %q (%v)", d.Spec.Template.Annotations[RestartedAtAnnotation], err)
	}
	if err := RolloutRestart(context.Background(), cs, "shop", "absent"); err == nil {
		t.Error("restarting a Deployment that does not exist succeeded")
	}
}
