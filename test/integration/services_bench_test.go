package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
	"github.com/mtls-demo/mtls-webhook/pkg/csivalidate"
	"github.com/mtls-demo/mtls-webhook/pkg/inject"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"github.com/mtls-demo/mtls-webhook/pkg/policy"
	"github.com/mtls-demo/mtls-webhook/pkg/webhook"
)

// bigNamespaceServices is how many Services the crowded namespace holds.
const bigNamespaceServices = 500

// BenchmarkHandlerInABigNamespace measures the handler where the Services
// lookup matters: a namespace with 500 Services, each carrying kubectl's
// last-applied-configuration annotation, as `kubectl apply` leaves them.
// The handler reads them for every pod (to derive DNS names), through a
// real informer cache on the API server: with controller-runtime's
// defaults (whole objects, deep-copied on every read), with the webhook's
// CacheOptions (slimmed, shared), and with those plus the selector index
// the webhook looks candidates up in. The caches are filled and run side
// by side; the pods rotate between them.
func BenchmarkHandlerInABigNamespace(b *testing.B) {
	cs, _, _ := clients(b)
	ns := namespace(b, cs, "bench-services", nil)
	ctx := ctxFor(b, 5*time.Minute)
	lastApplied := strings.Repeat("x", 2048)
	for i := range bigNamespaceServices {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%03d", i), Namespace: ns,
				Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied}},
			// Headless: envtest's service IP range holds only a few hundred.
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": fmt.Sprintf("svc-%03d", i)},
				Ports: []corev1.ServicePort{{Name: "https", Port: 8443, TargetPort: intstr.FromInt32(8443)}}},
		}
		if i == 0 { // one Service selects the benchmark's pod
			svc.Spec.Selector = map[string]string{"app": "it"}
		}
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	start := func(o cache.Options) cache.Cache {
		o.Scheme = scheme
		o.DefaultNamespaces = map[string]cache.Config{ns: {}}
		c, err := cache.New(suite.cfg, o)
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = c.Start(ctx) }()
		if _, err := c.GetInformer(ctx, &corev1.Service{}); err != nil {
			b.Fatal(err)
		}
		eventually(b, 30*time.Second, "the cache to hold every Service", func(ctx context.Context) error {
			var l corev1.ServiceList
			if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
				return err
			}
			if len(l.Items) != bigNamespaceServices {
				return fmt.Errorf("%d Services cached", len(l.Items))
			}
			return nil
		})
		return c
	}
	defaults := start(cache.Options{})
	slim := start(webhook.CacheOptions())
	indexed := start(webhook.CacheOptions())
	if err := webhook.IndexServices(ctx, indexed); err != nil {
		b.Fatal(err)
	}

	pol, err := policy.New(nil, false, "cluster.local")
	if err != nil {
		b.Fatal(err)
	}
	d := annotations.NewDefaults()
	d.Issuer.Name = "ca"
	inj := &inject.Injector{Defaults: d, Policy: pol, Checks: csivalidate.NewMemo(64),
		Options: mutate.Options{ClusterDomain: "cluster.local"}}
	raw, err := json.Marshal(pod("p", optIn("ca")))
	if err != nil {
		b.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("bench"), Namespace: ns, Operation: admissionv1.Create,
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Object:   runtime.RawExtension{Raw: raw},
	}}
	variants := []struct {
		name string
		h    *webhook.Handler
	}{
		{"default cache, every Service listed", &webhook.Handler{Injector: inj, Reader: defaults}},
		{"slim shared cache, every Service listed", &webhook.Handler{Injector: inj, Reader: slim}},
		{"slim shared cache and the selector index (the webhook)", &webhook.Handler{Injector: inj, Reader: indexed, ServicesIndexed: true}},
	}
	metrics := []string{"default-cache-us", "slim-cache-us", "webhook-us"}
	const perRound = 300
	for i := 0; i < b.N; i++ {
		took := make([]time.Duration, len(variants))
		for j := range perRound {
			for k := range variants {
				v := (j + k) % len(variants)
				t0 := time.Now()
				resp := variants[v].h.Handle(ctx, req)
				took[v] += time.Since(t0)
				if !resp.Allowed || len(resp.Patch) == 0 {
					b.Fatalf("%s: not injected: %+v", variants[v].name, resp.Result)
				}
				if !strings.Contains(string(resp.Patch), "svc-000."+ns+".svc") {
					b.Fatalf("%s: the Service selecting the pod gave no DNS name: %s", variants[v].name, resp.Patch)
				}
			}
		}
		us := func(d time.Duration) float64 { return float64(d) / perRound / float64(time.Microsecond) }
		fmt.Fprintf(os.Stderr, "handler, %d Services in the namespace:\n", bigNamespaceServices)
		for v := range variants {
			b.ReportMetric(us(took[v]), metrics[v])
			fmt.Fprintf(os.Stderr, "  %-58s %6.0f µs (%.2f × the default)\n", variants[v].name, us(took[v]), float64(took[v])/float64(took[0]))
		}
		b.ReportMetric(float64(took[2])/float64(took[0]), "webhook/default")
	}
}
