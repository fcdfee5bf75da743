package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/mtls-demo/mtls-webhook/pkg/inject"
)

// ServerOptions configure the serving side of the webhook.
type ServerOptions struct {
	// CertDir holds CertName and KeyName; they are reloaded when they change.
	CertDir  string
	CertName string
	KeyName  string
	// Host and Port are where the HTTPS admission endpoint listens.
	Host string
	Port int
	// HealthAddr serves /healthz and /readyz; MetricsAddr serves /metrics.
	// "0" disables either.
	HealthAddr  string
	MetricsAddr string
	IssuerCheck IssuerCheckMode
	Injector    *inject.Injector
	Log         logr.Logger
}

// NewManager builds the controller-runtime manager that runs the webhook:
// the HTTPS server with hot-reloaded certificates, health and metrics
// endpoints, and the caches for Services and Issuers. Start it with
// mgr.Start(ctx); it stops gracefully when ctx is done.
func NewManager(cfg *rest.Config, o ServerOptions) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := cmapi.AddToScheme(scheme); err != nil {
		return nil, err
	}

	server := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host: o.Host, Port: o.Port, CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName,
		TLSOpts: []func(*tls.Config){serverTLS}, // the intermediate TLS profile, HTTP/1.1 only
	})
	mgr, err := manager.New(cfg, manager.Options{
		Scheme:                 scheme,
		WebhookServer:          server,
		HealthProbeBindAddress: o.HealthAddr,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		Logger:                 o.Log,
		Cache:                  CacheOptions(),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}

	metrics, err := NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}

	if err := IndexServices(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, fmt.Errorf("indexing Services: %w", err)
	}
	h := &Handler{Injector: o.Injector, Reader: mgr.GetClient(), ServicesIndexed: true, Metrics: metrics, Log: o.Log.WithName("admission")}
	watch := []client.Object{&corev1.Service{}}
	if o.IssuerCheck != IssuerCheckOff {
		switch ok, err := issuerCRDsInstalled(mgr.GetRESTMapper()); {
		case err != nil:
			return nil, fmt.Errorf("looking up the cert-manager CRDs: %w", err)
		case !ok:
			o.Log.Info("cert-manager CRDs (issuers.cert-manager.io) not found: issuer checks are off until the webhook restarts", "issuerCheck", o.IssuerCheck)
		default:
			h.Issuers = &IssuerChecker{Reader: mgr.GetClient(), Mode: o.IssuerCheck}
			watch = append(watch, &cmapi.Issuer{}, &cmapi.ClusterIssuer{})
		}
	}
	// Registering through the manager is what adds the server to the
	// runnables it starts; a server merely passed in Options never listens.
	mgr.GetWebhookServer().Register(Path, NewHTTPHandler(h))
	mgr.GetWebhookServer().Register(VerifyPath, NewVerifyHTTPHandler(h))
	mgr.GetWebhookServer().Register(WorkloadPath, NewWorkloadHTTPHandler(h))

	// Warm the caches before declaring readiness, so the first pod does not
	// pay for an informer's initial list.
	var synced atomic.Bool
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		for _, obj := range watch {
			if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
				return fmt.Errorf("starting the informer for %T: %w", obj, err)
			}
		}
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches did not sync")
		}
		synced.Store(true)
		<-ctx.Done()
		return nil
	})); err != nil {
		return nil, err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("caches", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("caches not synced yet")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// CacheOptions are the manager's cache settings. The handler reads
// Services on every admission, so they are stored slimmed to what it reads
// (name, namespace, selector, type: no annotations, managed fields or
// status) and handed out without the deep copy a cache read makes by
// default: nothing may modify them.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Service{}: {Transform: SlimService, UnsafeDisableDeepCopy: new(true)},
	}}
}

// serviceSelectorIndex indexes Services by one pair of their selector, the
// first key in sorted order with its value: a Service can only select a pod
// that carries that very label, so looking up each of a pod's labels finds
// every candidate once, however many Services the namespace holds.
const serviceSelectorIndex = "mtls.demo/selector-pair"

// IndexServices registers the index Handler uses when ServicesIndexed is
// set.
func IndexServices(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &corev1.Service{}, serviceSelectorIndex, serviceIndexKeys)
}

func serviceIndexKeys(obj client.Object) []string {
	svc, ok := obj.(*corev1.Service)
	if !ok || len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	first := ""
	for k := range svc.Spec.Selector {
		if first == "" || k < first {
			first = k
		}
	}
	return []string{selectorPair(first, svc.Spec.Selector[first])}
}

func selectorPair(key, value string) string { return key + "=" + value }

// SlimService keeps the parts of a Service that DNS-name derivation reads;
// anything else (a deletion tombstone) passes through unchanged.
func SlimService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	return &corev1.Service{
		TypeMeta: svc.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace, UID: svc.UID, ResourceVersion: svc.ResourceVersion,
			DeletionTimestamp: svc.DeletionTimestamp,
		},
		Spec: corev1.ServiceSpec{Selector: svc.Spec.Selector, Type: svc.Spec.Type},
	}, nil
}

// NewHTTPHandler serves h over HTTP the way the API server calls it: an
// AdmissionReview in, an AdmissionReview out, with the body size bounded.
// Registered on the manager's webhook server, it is wrapped in
// controller-runtime's request metrics like any other webhook.
func NewHTTPHandler(h *Handler) http.Handler {
	return limitBody(podServer(h, h.handlePod), MaxRequestBytes)
}

// NewVerifyHTTPHandler serves h's validating decision (VerifyPath) the same
// way.
func NewVerifyHTTPHandler(h *Handler) http.Handler {
	return limitBody(podServer(h, h.verifyPod), MaxRequestBytes)
}

// NewWorkloadHTTPHandler serves h's workload template check (WorkloadPath,
// Workloads) the same way, on the same one-pass path.
func NewWorkloadHTTPHandler(h *Handler) http.Handler {
	return limitBody(reviewServer[admissionWorkload]{h: h, kind: kindOther, decide: h.decideWorkload, handle: h.handleWorkloadRequest}, MaxRequestBytes)
}

func issuerCRDsInstalled(m meta.RESTMapper) (bool, error) {
	_, err := m.RESTMapping(schema.GroupKind{Group: cmapi.SchemeGroupVersion.Group, Kind: cmapi.IssuerKind}, cmapi.SchemeGroupVersion.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, err
}
