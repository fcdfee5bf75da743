// Package addons installs the local cluster's add-ons the way users install
// them: cert-manager from its own Helm chart and the csi-driver from its own
// chart, both taken from their Go module zips (the versions the main module
// pins), with every image pointed at the local builds (internal/images) and
// never pulled.
//
// The charts are copied out of the module cache into a temporary directory
// first: the module cache is read-only, and cert-manager's chart ships a
// Chart.template.yaml whose version the release tool fills in, so the copy
// gets the Chart.yaml that release would have (version and appVersion
// v1.19.2). Nothing downloaded is ever written into the repository.
//
// cert-manager's images run our launchers (hack/tools/certmanager), stand-ins
// for upstream's binaries, whose nested cmd modules the module proxy does not
// serve; they accept every argument the chart passes.
package addons

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mtls-demo/mtls-webhook/internal/images"
)

// Pinned charts: the module versions of the main go.mod (a test checks).
const (
	CertManagerModule  = "github.com/cert-manager/cert-manager"
	CertManagerVersion = "v1.19.2"
	CertManagerChart   = "deploy/charts/cert-manager"

	CSIDriverModule  = "github.com/cert-manager/csi-driver"
	CSIDriverVersion = "v0.12.0"
	CSIDriverChart   = "deploy/charts/csi-driver"
)

// Releases, as cert-manager's documentation installs them.
const (
	Namespace          = "cert-manager"
	CertManagerRelease = "cert-manager"
	CSIDriverRelease   = "cert-manager-csi-driver"
)

// DefaultTimeout bounds one `helm upgrade --install --wait`.
const DefaultTimeout = 10 * time.Minute

//go:embed values/cert-manager.yaml values/csi-driver.yaml
var valuesFS embed.FS

// Options are what both installs need.
type Options struct {
	// Images holds the references the local node imported (bin/images/
	// index.json, as `make images` wrote it).
	Images *images.Index
	// KubeletRootDir is the local kubelet's --root-dir; the csi-driver
	// chart mounts <root>/pods, <root>/plugins and <root>/plugins_registry
	// from it. Required by InstallCSIDriver.
	KubeletRootDir string
	// Timeout of helm's --wait (default DefaultTimeout).
	Timeout time.Duration
	// Set are extra --set expressions, after the installer's own.
	Set []string
	// Output receives helm's output (default: discarded; errors carry it).
	Output io.Writer
	// Go is the go command used to locate the module zips (default "go").
	Go string
	// ModuleRoot is a directory inside this repository's main module, whose
	// go.mod and go.sum pin and verify the charts' modules (default: the
	// working directory).
	ModuleRoot string
}

// InstallCertManager installs or upgrades cert-manager's chart as release
// "cert-manager" in namespace "cert-manager" with the CRDs, runs helm with
// --wait (so the controller, webhook and cainjector are Ready and the
// chart's startupapicheck Job passed) and returns helm's output.
func InstallCertManager(ctx context.Context, kubeconfig, binDir string, o Options) (string, error) {
	args, cleanup, err := CertManagerArgs(ctx, kubeconfig, o)
	if err != nil {
		return "", err
	}
	defer cleanup()
	return runHelm(ctx, filepath.Join(binDir, "helm"), args, o.Output)
}

// InstallCSIDriver installs or upgrades the csi-driver chart as release
// "cert-manager-csi-driver" in namespace "cert-manager", waiting for its
// DaemonSet.
func InstallCSIDriver(ctx context.Context, kubeconfig, binDir string, o Options) (string, error) {
	args, cleanup, err := CSIDriverArgs(ctx, kubeconfig, o)
	if err != nil {
		return "", err
	}
	defer cleanup()
	return runHelm(ctx, filepath.Join(binDir, "helm"), args, o.Output)
}

// CertManagerArgs prepares the chart and returns the arguments of helm
// that install it, and a function that removes the chart copy.
func CertManagerArgs(ctx context.Context, kubeconfig string, o Options) ([]string, func(), error) {
	refs := map[string]string{
		"image":                 images.CertManagerController,
		"webhook.image":         images.CertManagerWebhook,
		"cainjector.image":      images.CertManagerCAInjector,
		"startupapicheck.image": images.CertManagerStartupAPICheck,
	}
	sets, err := imageSets(o.Images, refs)
	if err != nil {
		return nil, nil, err
	}
	dir, cleanup, err := PrepareChart(ctx, o.goCmd(), o.ModuleRoot, CertManagerModule, CertManagerVersion, CertManagerChart)
	if err != nil {
		return nil, nil, err
	}
	values, err := writeValues(dir, "cert-manager.yaml")
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return helmArgs(CertManagerRelease, dir, kubeconfig, values, append(sets, o.Set...), o.timeout()), cleanup, nil
}

// CSIDriverArgs is CertManagerArgs for the csi-driver chart.
func CSIDriverArgs(ctx context.Context, kubeconfig string, o Options) ([]string, func(), error) {
	if o.KubeletRootDir == "" || !filepath.IsAbs(o.KubeletRootDir) {
		return nil, nil, fmt.Errorf("csi-driver: the kubelet's root dir must be an absolute path, got %q", o.KubeletRootDir)
	}
	sets, err := imageSets(o.Images, map[string]string{
		"image":                    images.CSIDriver,
		"nodeDriverRegistrarImage": images.CSINodeDriverRegistrar,
		"livenessProbeImage":       images.CSILivenessProbe,
	})
	if err != nil {
		return nil, nil, err
	}
	// The driver's data dir is mounted with Bidirectional propagation, which
	// the runtime allows only on a shared mount. The chart's default,
	// /tmp/cert-manager-csi-driver, is on the host's root, which is private
	// on machines without systemd; the kubelet makes its root dir rshared,
	// so the keys live there (and go with the node's state).
	sets = append(sets, "app.kubeletRootDir="+o.KubeletRootDir,
		"app.driver.csiDataDir="+filepath.Join(o.KubeletRootDir, "cert-manager-csi-driver"))
	dir, cleanup, err := PrepareChart(ctx, o.goCmd(), o.ModuleRoot, CSIDriverModule, CSIDriverVersion, CSIDriverChart)
	if err != nil {
		return nil, nil, err
	}
	values, err := writeValues(dir, "csi-driver.yaml")
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return helmArgs(CSIDriverRelease, dir, kubeconfig, values, append(sets, o.Set...), o.timeout()), cleanup, nil
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func (o Options) goCmd() string {
	if o.Go != "" {
		return o.Go
	}
	return "go"
}

func helmArgs(release, chartDir, kubeconfig, values string, sets []string, timeout time.Duration) []string {
	args := []string{"upgrade", "--install", release, chartDir,
		"--namespace", Namespace, "--create-namespace",
		"--kubeconfig", kubeconfig,
		"--values", values,
		"--wait", "--wait-for-jobs", "--timeout", timeout.String()}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

// imageSets turns image names into <key>.repository=... and <key>.tag=...
// from the index.
func imageSets(idx *images.Index, keys map[string]string) ([]string, error) {
	if idx == nil {
		return nil, errors.New("no image index: run `make images` and pass images.Load(images.DefaultDir(repo))")
	}
	var sets []string
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		ref, err := idx.Ref(keys[key])
		if err != nil {
			return nil, err
		}
		repo, tag, err := SplitRef(ref)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", keys[key], err)
		}
		sets = append(sets, key+".repository="+repo, key+".tag="+tag)
	}
	return sets, nil
}

// SplitRef splits "host/name:tag" into repository and tag; a digest
// reference is refused (the charts take a tag, and images here are local).
// Kept by hand: go-containerregistry's name.NewTag rewrites a reference
// without a registry to index.docker.io/library/..., which the charts would
// then ask containerd for, not the name the image was imported under.
func SplitRef(ref string) (repo, tag string, err error) {
	if strings.Contains(ref, "@") {
		return "", "", fmt.Errorf("%q: digest references are not used for local images", ref)
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || i < strings.LastIndex(ref, "/") || i == len(ref)-1 {
		return "", "", fmt.Errorf("%q has no tag", ref)
	}
	return ref[:i], ref[i+1:], nil
}

// writeValues writes the embedded values file next to the chart copy.
func writeValues(chartDir, name string) (string, error) {
	data, err := valuesFS.ReadFile("values/" + name)
	if err != nil {
		return "", err
	}
	path := filepath.Join(filepath.Dir(chartDir), "mtls-demo-"+name)
	return path, os.WriteFile(path, data, 0o644)
}

// Values returns the embedded values file of a chart ("cert-manager.yaml"
// or "csi-driver.yaml").
func Values(name string) ([]byte, error) { return valuesFS.ReadFile("values/" + name) }

// ModuleDir returns the module cache directory of module, which the main
// module (the one holding dir; "" is the working directory) must require at
// exactly version. It asks the main module rather than the module proxy:
// the checksum database has no entries for the csi-driver, so only the
// hashes in go.sum verify it. A module not extracted yet is downloaded
// (`go mod download`, verified against go.sum).
func ModuleDir(ctx context.Context, goCmd, dir, module, version string) (string, error) {
	var info struct{ Path, Version, Dir, Error string }
	for attempt := 0; ; attempt++ {
		out, err := goJSON(ctx, goCmd, dir, "list", "-m", "-json", module)
		if err != nil {
			return "", fmt.Errorf("%w (run inside the repository, whose go.mod pins %s)", err, module)
		}
		if err := json.Unmarshal(out, &info); err != nil {
			return "", fmt.Errorf("go list -m %s: %w", module, err)
		}
		if info.Version != version {
			return "", fmt.Errorf("go.mod pins %s %s, the installer expects %s", module, info.Version, version)
		}
		if info.Dir != "" || attempt > 0 {
			break
		}
		if _, err := goJSON(ctx, goCmd, dir, "mod", "download", "-json", module); err != nil {
			return "", err
		}
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: the module is still not in the module cache", module)
	}
	return info.Dir, nil
}

func goJSON(ctx context.Context, goCmd, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w: %s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

// PrepareChart copies a chart out of a module zip (see ModuleDir for
// moduleRoot) into a new temporary
// directory and gives it the Chart.yaml of that release: cert-manager's
// Chart.template.yaml (version v0.0.0, "{{IS_PRERELEASE}}") or the
// csi-driver's Chart.yaml (version v0.0.0), with version and appVersion set
// to the module version. It returns the chart directory and a function that
// removes the copy.
func PrepareChart(ctx context.Context, goCmd, moduleRoot, module, version, chartPath string) (string, func(), error) {
	modDir, err := ModuleDir(ctx, goCmd, moduleRoot, module, version)
	if err != nil {
		return "", nil, err
	}
	src := filepath.Join(modDir, filepath.FromSlash(chartPath))
	tmp, err := os.MkdirTemp("", "mtls-demo-chart-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	dst := filepath.Join(tmp, filepath.Base(src))
	if err := copyTree(src, dst); err != nil {
		cleanup()
		return "", nil, err
	}
	if err := writeChartYAML(src, dst, version); err != nil {
		cleanup()
		return "", nil, err
	}
	return dst, cleanup, nil
}

func copyTree(src, dst string) error {
	// os.CopyFS writes files 0o666 (plus the source's execute bits) under
	// the umask: the copy of the read-only module cache is writable.
	return os.CopyFS(dst, os.DirFS(src))
}

// writeChartYAML writes the chart's Chart.yaml with version and appVersion
// set to version, as the chart's release tooling does: cert-manager's
// module zips hold v0.0.0 there, and the csi-driver's a Chart.template.yaml
// whose prerelease annotation is a {{IS_PRERELEASE}} placeholder.
func writeChartYAML(src, dst, version string) error {
	name := "Chart.yaml"
	data, err := os.ReadFile(filepath.Join(src, name))
	if errors.Is(err, fs.ErrNotExist) {
		name = "Chart.template.yaml"
		data, err = os.ReadFile(filepath.Join(src, name))
	}
	if err != nil {
		return err
	}
	var chart map[string]any
	if err := yaml.Unmarshal(data, &chart); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(src, name), err)
	}
	for _, k := range []string{"version", "appVersion"} {
		if _, ok := chart[k]; !ok {
			return fmt.Errorf("%s: no %s to fill in the release version (did the chart change shape?)", filepath.Join(src, name), k)
		}
		chart[k] = version
	}
	if ann, ok := chart["annotations"].(map[string]any); ok {
		for k, v := range ann {
			if v == "{{IS_PRERELEASE}}" {
				ann[k] = "false"
			}
		}
	}
	out, err := yaml.Marshal(chart)
	if err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dst, "Chart.template.yaml"))
	return os.WriteFile(filepath.Join(dst, "Chart.yaml"), out, 0o644)
}

func runHelm(ctx context.Context, helm string, args []string, out io.Writer) (string, error) {
	var buf bytes.Buffer
	w := io.Writer(&buf)
	if out != nil {
		w = io.MultiWriter(&buf, out)
	}
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, buf.String())
	}
	return buf.String(), nil
}
