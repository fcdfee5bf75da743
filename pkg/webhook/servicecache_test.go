package webhook

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// serviceCacheSize is how many Services the cache memory is measured with.
const serviceCacheSize = 10_000

// bigService is a Service as `kubectl apply` leaves it, with a little more
// that a user who may create Services can add: the last-applied annotation,
// labels, managed fields, ports and a load balancer status.
func bigService(i, annotationBytes int) corev1.Service {
	name := fmt.Sprintf("svc-%05d", i)
	return corev1.Service{
		TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fmt.Sprintf("ns-%03d", i%100), UID: types.UID("uid-" + name),
			ResourceVersion: fmt.Sprint(1000 + i),
			Labels:          map[string]string{"app": name, "team": "payments", "tier": "backend"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", annotationBytes),
				"example.com/owner": "team-payments@example.com",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
				APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:ports":{},"f:selector":{}}}`)}},
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443), Protocol: corev1.ProtocolTCP},
				{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090), Protocol: corev1.ProtocolTCP}},
			ClusterIP: "198.18.0.1", ClusterIPs: []string{"198.18.0.1"},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.19.0.1"}}}},
	}
}

// cachedServiceBytes fills client-go's informer (the one controller-runtime's
// cache runs) with n Services from a list, with the transform given or none,
// and returns the live heap it holds per Service once synced. The list is
// built and dropped before the measurement: what remains is the store.
func cachedServiceBytes(tb testing.TB, n, annotationBytes int, transform toolscache.TransformFunc) float64 {
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			l := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: make([]corev1.Service, n)}
			for i := range l.Items {
				l.Items[i] = bigService(i, annotationBytes)
			}
			return l, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}
	before := liveHeap()
	inf := toolscache.NewSharedIndexInformer(listThenWatch{lw}, &corev1.Service{}, 0, toolscache.Indexers{
		toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc,
	})
	if transform != nil {
		if err := inf.SetTransform(transform); err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.RunWithContext(ctx)
	deadline := time.Now().Add(time.Minute)
	for !inf.HasSynced() || len(inf.GetStore().ListKeys()) != n {
		if time.Now().After(deadline) {
			tb.Fatalf("the informer holds %d of %d Services after a minute", len(inf.GetStore().ListKeys()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	held := float64(int64(liveHeap())-int64(before)) / float64(n)
	// Keep the informer (and its store) alive until measured.
	if len(inf.GetStore().ListKeys()) != n {
		tb.Fatal("store changed")
	}
	return held
}

// listThenWatch is a ListWatch that, like an API server without the
// streaming list, answers a list: the reflector then lists first.
type listThenWatch struct{ *toolscache.ListWatch }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

// TestServiceCacheKeepsOnlyWhatTheWebhookReads measures the Service cache
// with 10,000 Services: slimmed by SlimService (the transform CacheOptions
// sets) it holds a small fraction of the whole objects, and a few hundred
// bytes per Service, whatever the Services' annotations hold.
func TestServiceCacheKeepsOnlyWhatTheWebhookReads(t *testing.T) {
	whole := cachedServiceBytes(t, serviceCacheSize, 2048, nil)
	slim := cachedServiceBytes(t, serviceCacheSize, 2048, SlimService)
	t.Logf("%d Services: %.0f bytes each whole, %.0f slimmed (%.1f MiB vs %.1f MiB)",
		serviceCacheSize, whole, slim, whole*serviceCacheSize/(1<<20), slim*serviceCacheSize/(1<<20))
	if slim > 1536 {
		t.Errorf("a slimmed Service holds %.0f bytes in the cache, want at most 1.5 KiB", slim)
	}
	if whole < 3*slim {
		t.Errorf("slimming saves too little: %.0f bytes whole, %.0f slim", whole, slim)
	}
	// What a Service's author adds beyond the selector never reaches the
	// slimmed cache: 32 KiB of annotations each cost the same as 2 KiB.
	const fewer = 1000
	bigWhole := cachedServiceBytes(t, fewer, 32<<10, nil)
	bigSlim := cachedServiceBytes(t, fewer, 32<<10, SlimService)
	t.Logf("%d Services with 32 KiB annotations: %.0f bytes each whole, %.0f slimmed", fewer, bigWhole, bigSlim)
	if bigSlim > 1.25*slim+128 || bigWhole < 32<<10 {
		t.Errorf("annotations reached the slimmed cache: %.0f bytes per Service with 32 KiB annotations, %.0f with 2 KiB (whole: %.0f)", bigSlim, slim, bigWhole)
	}
}

// BenchmarkHostileServiceCache reports the informer's live heap per Service with
// 10,000 Services, whole and slimmed.
func BenchmarkHostileServiceCache(b *testing.B) {
	for _, v := range []struct {
		name string
		t    toolscache.TransformFunc
	}{{"whole", nil}, {"slim", SlimService}} {
		b.Run(v.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = cachedServiceBytes(b, serviceCacheSize, 2048, v.t)
			}
			b.ReportMetric(per, "bytes/service")
			b.ReportMetric(per*serviceCacheSize/(1<<20), "MiB/10k")
		})
	}
}
