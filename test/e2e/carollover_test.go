//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/internal/demo"
	"github.com/mtls-demo/mtls-webhook/internal/kubeutil"
	"github.com/mtls-demo/mtls-webhook/internal/logtail"
)

// TestCARolloverUnderLoad renews the demo's CAs while the load client
// calls frontend -> backend over mTLS, and counts the requests that failed:
//
//   - the root CA is renewed: rotationPolicy Never keeps its key, so
//     certificates chained to the old root certificate verify against the new
//     one;
//   - the issuing CA is renewed, which rotates its key: pods send leaf +
//     issuing CA and trust only the root, so while one app already holds a
//     leaf from the new key and the other still one from the old, they keep
//     trusting each other.
//
// The goal, and the assertion, is failed=0.
func TestCARolloverUnderLoad(t *testing.T) {
	t.Parallel() // its own namespace; runs beside the other parallel tests
	ctx := ctxFor(t, 12*time.Minute)
	ns := "e2e-ca-rollover"
	// Leaves renew 45 s after issuance, so both apps pick up the new issuing
	// key within 45 s of the rotation.
	installDemo(t, ns, "pki.certDuration=3m", "pki.certRenewBefore=2m15s")
	root, issuing := demo.RootCACertificate, demo.IssuingCACertificate
	rootSecret, issuingSecret := demo.RootCASecret, demo.IssuingCASecret

	// Both apps started together and would renew together. A fresh backend
	// about half a renewal period later (15 s plus the rollout) makes them
	// renew at different moments, so after the rotation there is a window
	// in which one holds a leaf from the new issuing key and the other one
	// from the old: the overlap under test. A fixed offset, not a wait for
	// a condition: the time itself is what desynchronizes the renewals.
	time.Sleep(15 * time.Second)
	if err := kubeutil.RolloutRestart(ctx, kube, ns, "backend"); err != nil {
		t.Fatal(err)
	}
	waitRollout(ctx, t, ns, "backend")
	readyPod(ctx, t, ns, "backend")
	// The NetworkPolicy agent admits the new backend's address a moment
	// after it is Ready; failures before that are not the CA's. Not a poll:
	// the agent's rules have no status the API shows, and probing through
	// the frontend would add requests to the ones the test counts.
	time.Sleep(20 * time.Second)

	// About 110 s of requests (every 200 ms): the rotation comes about 30 s
	// in, and both apps' leaves follow within a renewal period (45 s).
	load := clientPod(ns, "rollover-load", "https://frontend-svc."+ns+".svc:8080", 550, true)
	created, err := kube.CoreV1().Pods(ns).Create(ctx, load, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deletePod(ns, created.Name) })
	// A fixed offset: the rotation must come well into the load, not at a
	// condition's moment.
	time.Sleep(20 * time.Second)

	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rootBefore, err := demo.SecretCertificate(ctx, c, ns, rootSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.RenewCertificate(ctx, c, ns, root); err != nil {
		t.Fatal(err)
	}
	rootAfter := waitNewCert(ctx, t, c, ns, rootSecret, rootBefore)
	if !bytes.Equal(rootBefore.RawSubjectPublicKeyInfo, rootAfter.RawSubjectPublicKeyInfo) {
		t.Errorf("root CA renewal changed its key: rotationPolicy Never should keep it")
	}
	t.Logf("root CA renewed: serial %s -> %s, same key", rootBefore.SerialNumber, rootAfter.SerialNumber)

	issBefore, err := demo.SecretCertificate(ctx, c, ns, issuingSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.RenewCertificate(ctx, c, ns, issuing); err != nil {
		t.Fatal(err)
	}
	issAfter := waitNewCert(ctx, t, c, ns, issuingSecret, issBefore)
	if bytes.Equal(issBefore.RawSubjectPublicKeyInfo, issAfter.RawSubjectPublicKeyInfo) {
		t.Fatalf("issuing CA renewal kept its key: the rotation under test did not happen")
	}
	rotated := time.Now()
	t.Logf("issuing CA renewed with a new key: serial %s -> %s", issBefore.SerialNumber, issAfter.SerialNumber)

	// Both apps' leaves must come from the new issuing key while the load
	// runs; the moments they switched show the mixed window.
	switched := map[string]time.Time{}
	err = wait.PollUntilContextCancel(ctx, 3*time.Second, true, func(ctx context.Context) (bool, error) {
		for sa, at := range leavesFrom(ctx, ns, issAfter.SubjectKeyId) {
			if _, ok := switched[sa]; !ok {
				switched[sa] = at
			}
		}
		_, f := switched["frontend"]
		_, b := switched["backend"]
		return f && b, nil
	})
	if err != nil {
		t.Fatalf("apps holding a leaf from the new issuing key: %v after %s: %v", keys(switched), time.Since(rotated).Round(time.Second), err)
	}
	gap := switched["frontend"].Sub(switched["backend"]).Abs()
	t.Logf("leaves from the new issuing key: frontend at +%s, backend at +%s (mixed generations for %s)",
		switched["frontend"].Sub(rotated).Round(time.Second), switched["backend"].Sub(rotated).Round(time.Second), gap.Round(time.Second))
	if gap < 5*time.Second {
		t.Errorf("frontend and backend switched issuing keys %s apart: no window with mixed generations was tested", gap.Round(time.Second))
	}

	res := waitTerminated(ctx, t, created)
	m := regexp.MustCompile(`summary: sent=(\d+) ok=(\d+) failed=(\d+)`).FindStringSubmatch(res.logs)
	if m == nil {
		t.Fatalf("load client printed no summary (exit %d):\n%s", res.exitCode, logtail.Lines(res.logs, 20))
	}
	ok, _ := strconv.Atoi(m[2])
	failed, _ := strconv.Atoi(m[3])
	t.Logf("ca-rollover: requests ok=%d failed=%d (root renewed, issuing CA key rotated, both leaves re-issued)", ok, failed)
	if failed != 0 || ok == 0 || res.exitCode != 0 {
		t.Errorf("requests during the CA rollover: ok=%d failed=%d exit=%d, want failed=0:\n%s", ok, failed, res.exitCode, failures(res.logs))
	}
	// The client must have been running when the second app switched, or
	// the mixed window was never under load.
	if p, err := kube.CoreV1().Pods(ns).Get(ctx, created.Name, metav1.GetOptions{}); err == nil {
		for _, cs := range p.Status.ContainerStatuses {
			if term := cs.State.Terminated; term != nil && term.FinishedAt.Time.Before(maxTime(switched["frontend"], switched["backend"])) {
				t.Errorf("load ended at %s, before both apps switched issuing keys: the mixed window was not under load", term.FinishedAt.Format(time.RFC3339))
			}
		}
	}
}

func waitNewCert(ctx context.Context, t *testing.T, c client.Client, ns, name string, old *x509.Certificate) *x509.Certificate {
	t.Helper()
	var cur *x509.Certificate
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := demo.SecretCertificate(ctx, c, ns, name)
		if err != nil {
			return false, nil
		}
		cur = got
		return got.SerialNumber.Cmp(old.SerialNumber) != 0, nil
	})
	if err != nil {
		t.Fatalf("secret %s/%s still holds serial %s: %v", ns, name, old.SerialNumber, err)
	}
	return cur
}

// leavesFrom maps each service account of the namespace (from the SPIFFE
// ID) to the creation time of its first CertificateRequest whose
// certificate the issuing key with subject key id ski signed.
func leavesFrom(ctx context.Context, ns string, ski []byte) map[string]time.Time {
	out := map[string]time.Time{}
	crs, err := dyn.Resource(certificateRequests).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return out
	}
	for _, cr := range crs.Items {
		b64, _, _ := unstructured.NestedString(cr.Object, "status", "certificate")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		c, err := firstCert(raw)
		if err != nil || !bytes.Equal(c.AuthorityKeyId, ski) {
			continue
		}
		for _, u := range c.URIs {
			if i := strings.LastIndex(u.Path, "/sa/"); i >= 0 {
				sa := u.Path[i+len("/sa/"):]
				at := cr.GetCreationTimestamp().Time
				if prev, ok := out[sa]; !ok || at.Before(prev) {
					out[sa] = at
				}
			}
		}
	}
	return out
}

func firstCert(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func keys(m map[string]time.Time) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// failures returns the client's summary with its failure reasons.
func failures(logs string) string {
	if i := strings.LastIndex(logs, "summary:"); i >= 0 {
		return logs[i:]
	}
	return logtail.Lines(logs, 20)
}
