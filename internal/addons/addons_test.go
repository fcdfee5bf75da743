package addons

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mtls-demo/mtls-webhook/internal/images"
)

// The charts' versions are the module versions the main module builds
// against: the cert-manager packages the launchers run and the chart that
// runs them must be one release.
func TestVersionsAreTheMainModules(t *testing.T) {
	for module, want := range map[string]string{CertManagerModule: CertManagerVersion, CSIDriverModule: CSIDriverVersion} {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
		if err != nil {
			t.Fatalf("go list -m %s: %v", module, err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("go.mod pins %s %s, the installer installs the chart of %s", module, got, want)
		}
	}
}

func TestPrepareChart(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ module, version, chart, name string }{
		{CertManagerModule, CertManagerVersion, CertManagerChart, "cert-manager"},
		{CSIDriverModule, CSIDriverVersion, CSIDriverChart, "cert-manager-csi-driver"},
	} {
		dir, cleanup, err := PrepareChart(ctx, "go", "", c.module, c.version, c.chart)
		if err != nil {
			t.Fatal(err)
		}
		var chart struct{ Name, Version, AppVersion string }
		data, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &chart); err != nil {
			t.Fatal(err)
		}
		if chart.Name != c.name || chart.Version != c.version || chart.AppVersion != c.version {
			t.Errorf("%s: Chart.yaml name %q version %q appVersion %q, want %s %s", c.chart, chart.Name, chart.Version, chart.AppVersion, c.name, c.version)
		}
		if strings.Contains(string(data), "{{") {
			t.Errorf("%s: Chart.yaml keeps a release-tool placeholder:\n%s", c.chart, data)
		}
		// The rest is the module's chart, byte for byte, and writable.
		modDir, err := ModuleDir(ctx, "go", "", c.module, c.version)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(modDir, c.chart, "values.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: values.yaml differs from the module's (err %v)", c.chart, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "templates")); err != nil || fi.Mode().Perm()&0o200 == 0 {
			t.Errorf("%s: templates/ missing or read-only in the copy (%v)", c.chart, err)
		}
		cleanup()
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cleanup left %s behind", dir)
		}
	}
}

// index is an image index as `make images` writes it, for the images the
// installer names.
func index() *images.Index {
	idx := &images.Index{}
	for _, s := range images.Specs(images.Options{}) {
		idx.Images = append(idx.Images, images.Image{Name: s.Name, Ref: s.Ref(), Tarball: "/x/" + s.Name + ".tar", Digest: "sha256:0"})
	}
	return idx
}

func setsOf(args []string) []string {
	var sets []string
	for i, a := range args {
		if a == "--set" && i+1 < len(args) {
			sets = append(sets, args[i+1])
		}
	}
	return sets
}

func TestCertManagerArgs(t *testing.T) {
	args, cleanup, err := CertManagerArgs(context.Background(), "/k/admin.conf", Options{Images: index(), Set: []string{"global.logLevel=4"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if args[0] != "upgrade" || args[1] != "--install" || args[2] != CertManagerRelease {
		t.Fatalf("args %q", args)
	}
	for _, want := range [][]string{{"--namespace", Namespace}, {"--kubeconfig", "/k/admin.conf"}, {"--timeout", "10m0s"}} {
		if i := slices.Index(args, want[0]); i < 0 || args[i+1] != want[1] {
			t.Errorf("missing %s %s in %q", want[0], want[1], args)
		}
	}
	for _, flag := range []string{"--create-namespace", "--wait", "--wait-for-jobs"} {
		if !slices.Contains(args, flag) {
			t.Errorf("missing %s in %q", flag, args)
		}
	}
	wantSets := []string{
		"cainjector.image.repository=localhost/cert-manager-cainjector", "cainjector.image.tag=v1.19.2",
		"image.repository=localhost/cert-manager-controller", "image.tag=v1.19.2",
		"startupapicheck.image.repository=localhost/cert-manager-startupapicheck", "startupapicheck.image.tag=v1.19.2",
		"webhook.image.repository=localhost/cert-manager-webhook", "webhook.image.tag=v1.19.2",
		"global.logLevel=4", // the caller's, last
	}
	if got := setsOf(args); !slices.Equal(got, wantSets) {
		t.Errorf("--set\n got %q\nwant %q", got, wantSets)
	}
	// The chart and the values file exist until cleanup.
	chart := args[3]
	values := args[slices.Index(args, "--values")+1]
	for _, p := range []string{filepath.Join(chart, "Chart.yaml"), values} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}

func TestCSIDriverArgs(t *testing.T) {
	if _, _, err := CSIDriverArgs(context.Background(), "/k", Options{Images: index()}); err == nil {
		t.Error("no kubelet root dir accepted")
	}
	if _, _, err := CSIDriverArgs(context.Background(), "/k", Options{Images: index(), KubeletRootDir: "state/kubelet"}); err == nil {
		t.Error("a relative kubelet root dir accepted")
	}
	if _, _, err := CSIDriverArgs(context.Background(), "/k", Options{KubeletRootDir: "/s/kubelet"}); err == nil {
		t.Error("no image index accepted")
	}
	args, cleanup, err := CSIDriverArgs(context.Background(), "/k", Options{Images: index(), KubeletRootDir: "/state/kubelet"})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if args[2] != CSIDriverRelease || filepath.Base(args[3]) != "csi-driver" {
		t.Fatalf("args %q", args)
	}
	wantSets := []string{
		"image.repository=localhost/cert-manager-csi-driver", "image.tag=v0.12.0",
		"livenessProbeImage.repository=localhost/livenessprobe", "livenessProbeImage.tag=v2.17.0-local",
		"nodeDriverRegistrarImage.repository=localhost/csi-node-driver-registrar", "nodeDriverRegistrarImage.tag=v2.15.0-local",
		"app.kubeletRootDir=/state/kubelet",
		"app.driver.csiDataDir=/state/kubelet/cert-manager-csi-driver",
	}
	if got := setsOf(args); !slices.Equal(got, wantSets) {
		t.Errorf("--set\n got %q\nwant %q", got, wantSets)
	}
}

// Every image the charts run is a local build: pull policy Never.
func TestValuesNeverPull(t *testing.T) {
	for file, paths := range map[string][][]string{
		"cert-manager.yaml": {{"image"}, {"webhook", "image"}, {"cainjector", "image"}, {"startupapicheck", "image"}},
		"csi-driver.yaml":   {{"image"}, {"nodeDriverRegistrarImage"}, {"livenessProbeImage"}},
	} {
		data, err := Values(file)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, p := range paths {
			m := v
			for _, k := range p {
				next, ok := m[k].(map[string]any)
				if !ok {
					t.Fatalf("%s: no %v", file, p)
				}
				m = next
			}
			if m["pullPolicy"] != "Never" {
				t.Errorf("%s: %v.pullPolicy = %v, want Never", file, p, m["pullPolicy"])
			}
		}
	}
	data, _ := Values("cert-manager.yaml")
	var v struct {
		CRDs struct{ Enabled bool } `json:"crds"`
	}
	if err := yaml.Unmarshal(data, &v); err != nil || !v.CRDs.Enabled {
		t.Errorf("cert-manager.yaml: crds.enabled must be true (err %v)", err)
	}
}

func TestSplitRef(t *testing.T) {
	for ref, want := range map[string][2]string{
		"localhost/cert-manager-controller:v1.19.2": {"localhost/cert-manager-controller", "v1.19.2"},
		"localhost:5000/x/y:1":                      {"localhost:5000/x/y", "1"},
	} {
		repo, tag, err := SplitRef(ref)
		if err != nil || repo != want[0] || tag != want[1] {
			t.Errorf("SplitRef(%q) = %q %q %v", ref, repo, tag, err)
		}
	}
	for _, bad := range []string{"localhost:5000/x", "x@sha256:00", "x:"} {
		if _, _, err := SplitRef(bad); err == nil {
			t.Errorf("SplitRef(%q) accepted", bad)
		}
	}
}

// Outside the main module the csi-driver cannot be verified (no checksum
// database entry): ModuleDir must say so, not fall back to the proxy.
func TestModuleDirNeedsTheMainModule(t *testing.T) {
	if _, err := ModuleDir(context.Background(), "go", t.TempDir(), CSIDriverModule, CSIDriverVersion); err == nil ||
		!strings.Contains(err.Error(), "run inside the repository") {
		t.Errorf("outside the module: %v", err)
	}
	if _, err := ModuleDir(context.Background(), "go", "", CertManagerModule, "v1.18.0"); err == nil ||
		!strings.Contains(err.Error(), "go.mod pins "+CertManagerModule+" "+CertManagerVersion) {
		t.Errorf("a version other than go.mod's: %v", err)
	}
}
