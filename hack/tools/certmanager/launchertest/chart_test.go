package launchertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// CertManagerVersion is the chart's version and appVersion, the version of
// the cert-manager module this module pins.
const CertManagerVersion = "v1.19.2"

// chartValues is a values file internal/addons installs a chart with.
func chartValues(name string) string {
	return filepath.Join(repoRoot, "internal", "addons", "values", name)
}

func helmBinary(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		h = filepath.Join(repoRoot, "bin", "helm")
	}
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("helm binary (HELM or <repo>/bin/helm; `make %s` builds it): %v", filepath.Join(repoRoot, "bin", "helm"), err)
	}
	return h
}

// copyChart copies a chart out of the module cache into a temporary
// directory and writes the Chart.yaml its release would have (version and
// appVersion filled in), as internal/addons does before installing it.
// cert-manager ships Chart.template.yaml, the csi-driver a Chart.yaml; both
// say v0.0.0.
func copyChart(t *testing.T, src, version string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(src, "Chart.template.yaml"))
	if os.IsNotExist(err) {
		tmpl, err = os.ReadFile(filepath.Join(src, "Chart.yaml"))
	}
	if err != nil {
		t.Fatal(err)
	}
	chart := strings.NewReplacer(
		"\nversion: v0.0.0", "\nversion: "+version,
		"\nappVersion: v0.0.0", "\nappVersion: "+version,
		"{{IS_PRERELEASE}}", "false",
	).Replace(string(tmpl))
	if strings.Contains(chart, "v0.0.0") || !strings.Contains(chart, "appVersion: "+version) {
		t.Fatalf("%s: Chart.yaml changed shape: %s", src, chart)
	}
	if err := os.WriteFile(filepath.Join(dst, "Chart.yaml"), []byte(chart), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Render runs `helm template cert-manager <chart> -n cert-manager` on
// cert-manager's chart with the installer's values file, local image
// references and extra --set expressions.
func Render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	chart := copyChart(t, filepath.Join(cmDir, "deploy", "charts", "cert-manager"), CertManagerVersion)
	sets := []string{
		"image.repository=localhost/cert-manager-controller", "image.tag=" + CertManagerVersion,
		"webhook.image.repository=localhost/cert-manager-webhook", "webhook.image.tag=" + CertManagerVersion,
		"cainjector.image.repository=localhost/cert-manager-cainjector", "cainjector.image.tag=" + CertManagerVersion,
		"startupapicheck.image.repository=localhost/cert-manager-startupapicheck", "startupapicheck.image.tag=" + CertManagerVersion,
	}
	return renderChart(t, "cert-manager", chart, chartValues("cert-manager.yaml"), append(sets, set...))
}

func renderChart(t *testing.T, release, chart, values string, set []string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", release, chart, "--namespace", "cert-manager",
		"--kube-version", "1.37.0", "--values", values}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helmBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	var objs []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	if len(objs) == 0 {
		t.Fatal("helm rendered nothing")
	}
	return objs
}

// Find returns the rendered object of that kind and name.
func Find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("the chart rendered no %s %s", kind, name)
	return nil
}

// Container is the one container of a rendered Deployment or Job.
type Container struct {
	Name  string
	Image string
	Args  []string
	Ports map[string]int64 // by port name
	Probe map[string]struct {
		Path string
		Port string
	} // by probe kind ("livenessProbe", "readinessProbe")
}

// ContainerOf reads the first container of a rendered Deployment or Job.
func ContainerOf(t *testing.T, o *unstructured.Unstructured) Container {
	t.Helper()
	return Containers(t, o)[0]
}

// Containers reads every container of a rendered workload.
func Containers(t *testing.T, o *unstructured.Unstructured) []Container {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		t.Fatalf("%s %s has no containers", o.GetKind(), o.GetName())
	}
	var out []Container
	for _, raw := range cs {
		out = append(out, readContainer(raw.(map[string]any)))
	}
	return out
}

func readContainer(m map[string]any) Container {
	c := Container{Ports: map[string]int64{}, Probe: map[string]struct{ Path, Port string }{}}
	c.Name, _, _ = unstructured.NestedString(m, "name")
	c.Image, _, _ = unstructured.NestedString(m, "image")
	c.Args, _, _ = unstructured.NestedStringSlice(m, "args")
	ports, _, _ := unstructured.NestedSlice(m, "ports")
	for _, p := range ports {
		pm := p.(map[string]any)
		name, _, _ := unstructured.NestedString(pm, "name")
		port, _, _ := unstructured.NestedInt64(pm, "containerPort")
		c.Ports[name] = port
	}
	for _, kind := range []string{"livenessProbe", "readinessProbe"} {
		path, ok, _ := unstructured.NestedString(m, kind, "httpGet", "path")
		if !ok {
			continue
		}
		port, _, _ := unstructured.NestedFieldNoCopy(m, kind, "httpGet", "port")
		c.Probe[kind] = struct{ Path, Port string }{path, fmt.Sprint(port)}
	}
	return c
}

// ExpandEnv replaces $(POD_NAMESPACE) as the kubelet does for the chart's
// env var.
func ExpandEnv(args []string, namespace string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "$(POD_NAMESPACE)", namespace)
	}
	return out
}

// ApplyRBAC creates the chart's ServiceAccounts and RBAC objects, so that
// each launcher can run as its own ServiceAccount with exactly the
// permissions the chart grants it.
func (e *Env) ApplyRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		default:
			continue
		}
		if o.GetAPIVersion() != "v1" && o.GetAPIVersion() != rbacv1.SchemeGroupVersion.String() {
			t.Fatalf("%s %s: unexpected apiVersion %s", o.GetKind(), o.GetName(), o.GetAPIVersion())
		}
		if err := e.Client.Create(context.Background(), o.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// ServiceAccountKubeconfig is a kubeconfig that authenticates as
// system:serviceaccount:<ns>:<name> (a client certificate with the
// ServiceAccount's user name and groups), so RBAC treats the launcher as
// the pod the chart would run.
func (e *Env) ServiceAccountKubeconfig(t *testing.T, ns, name string) string {
	t.Helper()
	user, err := e.plane.ControlPlane.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
