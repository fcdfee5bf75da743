package launchertest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// CSIDriverVersion is the csi-driver chart's version: the module version
// the main module and hack/tools/csidriver pin.
const CSIDriverVersion = "v0.12.0"

// csiBinaries returns the csi-driver and its two sidecars, built the way
// their images are: the unmodified driver from hack/tools/csidriver, the
// registrar and liveness probe from hack/tools/csisidecars. A prebuilt
// bin/cert-manager-csi-driver (make csi-driver-bin) is used when present.
func csiBinaries(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	bins := map[string]string{}
	build := func(name, module, pkg string) {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = filepath.Join(repoRoot, "hack", "tools", module)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s in hack/tools/%s: %v\n%s", pkg, module, err, b)
		}
		bins[name] = out
	}
	if p := filepath.Join(repoRoot, "bin", "cert-manager-csi-driver"); fileExists(p) {
		bins["cert-manager-csi-driver"] = p
	} else {
		build("cert-manager-csi-driver", "csidriver", "github.com/cert-manager/csi-driver/cmd")
	}
	build("node-driver-registrar", "csisidecars", "./cmd/registrar")
	build("liveness-probe", "csisidecars", "./cmd/livenessprobe")
	return bins
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestCSIDriverChartArgumentsAccepted renders the csi-driver chart with the
// installer's values file and a kubelet root dir off /var/lib/kubelet, and
// runs each of the DaemonSet's three binaries on exactly its container's
// arguments: each must parse them all (the driver is a cobra command asked
// for --help, the sidecars Go flag sets asked for --version; an unknown
// flag fails both before that).
func TestCSIDriverChartArgumentsAccepted(t *testing.T) {
	// The main module pins the csi-driver (and go.sum holds its hash).
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/csi-driver")
	list.Dir = repoRoot
	out, err := list.Output()
	if err != nil {
		t.Fatalf("locating the csi-driver module: %v", err)
	}
	modDir := strings.TrimSpace(string(out))
	const root = "/var/lib/mtls-demo/kubelet"
	chart := copyChart(t, filepath.Join(modDir, "deploy", "charts", "csi-driver"), CSIDriverVersion)
	objs := renderChart(t, "cert-manager-csi-driver", chart, chartValues("csi-driver.yaml"), []string{
		"image.repository=localhost/cert-manager-csi-driver", "image.tag=" + CSIDriverVersion,
		"nodeDriverRegistrarImage.repository=localhost/csi-node-driver-registrar", "nodeDriverRegistrarImage.tag=v2.15.0-local",
		"livenessProbeImage.repository=localhost/livenessprobe", "livenessProbeImage.tag=v2.17.0-local",
		"app.kubeletRootDir=" + root,
	})
	ds := Find(t, objs, "DaemonSet", "cert-manager-csi-driver")
	bins := csiBinaries(t)
	seen := 0
	for _, c := range Containers(t, ds) {
		bin, ok := bins[c.Name]
		if !ok {
			t.Errorf("the chart runs a container %q (%s) that no binary here stands for", c.Name, c.Image)
			continue
		}
		seen++
		last := "--version"
		if c.Name == "cert-manager-csi-driver" {
			last = "--help"
		}
		args := append(append([]string(nil), c.Args...), last)
		cmd := exec.Command(bin, args...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			t.Errorf("%s (%s) refused the chart's arguments %q: %v\n%s", c.Name, c.Image, c.Args, err, buf.String())
		}
		if c.Name == "node-driver-registrar" && !strings.Contains(strings.Join(c.Args, " "), "--kubelet-registration-path="+root+"/plugins/cert-manager-csi-driver/csi.sock") {
			t.Errorf("registrar args %q do not use the kubelet root dir %s", c.Args, root)
		}
		// The negative control: the same binary refuses a flag it lacks.
		bad := exec.Command(bin, "--no-such-flag", last)
		if out, err := bad.CombinedOutput(); err == nil {
			t.Errorf("%s accepted --no-such-flag, so this check proves nothing:\n%s", c.Name, out)
		}
	}
	if seen != 3 {
		t.Errorf("checked %d of the DaemonSet's containers, want driver, registrar and liveness probe", seen)
	}
	// The host paths the kubelet uses all follow app.kubeletRootDir.
	vols, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "volumes")
	hostPaths := 0
	for _, v := range vols {
		path, ok, _ := unstructured.NestedString(v.(map[string]any), "hostPath", "path")
		if !ok {
			continue
		}
		hostPaths++
		if strings.HasPrefix(path, "/var/lib/kubelet") {
			t.Errorf("a volume still mounts %s", path)
		}
	}
	if hostPaths == 0 {
		t.Error("the DaemonSet mounts no host paths: the check above proved nothing")
	}
}
