package images

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"testing"
)

// The references the charts and the cluster expect: a renamed
// image or a changed tag must be a deliberate edit of this list.
func TestSpecsReferences(t *testing.T) {
	want := map[string]string{
		Webhook:                    "ghcr.io/mtls-demo/mtls-webhook:0.1.0",
		DemoBackend:                "ghcr.io/mtls-demo/demo-backend:0.1.0",
		DemoFrontend:               "ghcr.io/mtls-demo/demo-frontend:0.1.0",
		DemoClient:                 "ghcr.io/mtls-demo/demo-client:0.1.0",
		E2EToolbox:                 "ghcr.io/mtls-demo/e2e-toolbox:0.1.0",
		CertManagerController:      "localhost/cert-manager-controller:v1.19.2",
		CertManagerCAInjector:      "localhost/cert-manager-cainjector:v1.19.2",
		CertManagerWebhook:         "localhost/cert-manager-webhook:v1.19.2",
		CertManagerStartupAPICheck: "localhost/cert-manager-startupapicheck:v1.19.2",
		CSIDriver:                  "localhost/cert-manager-csi-driver:v0.12.0",
		CSINodeDriverRegistrar:     "localhost/csi-node-driver-registrar:v2.15.0-local",
		CSILivenessProbe:           "localhost/livenessprobe:v2.17.0-local",
		CoreDNS:                    "localhost/coredns:v1.15.0",
		Pause:                      "localhost/pause:3.10-local",
	}
	got := map[string]string{}
	for _, s := range Specs(Options{}) {
		if _, dup := got[s.Name]; dup {
			t.Errorf("image %s listed twice", s.Name)
		}
		got[s.Name] = s.Ref()
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("references:\n got %v\nwant %v", got, want)
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	if !reflect.DeepEqual(Names(), names) {
		t.Errorf("Names() = %v, want %v", Names(), names)
	}
}

func TestSpecsAreComplete(t *testing.T) {
	ref := regexp.MustCompile(`^[a-z0-9.-]+(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+$`)
	for _, s := range Specs(Options{Registry: "example.com/r", Tag: "1.2.3", Version: "v1.2.3-4-gabc", Revision: "abc"}) {
		if !ref.MatchString(s.Ref()) {
			t.Errorf("%s: reference %q is not repository:tag", s.Name, s.Ref())
		}
		if len(s.Binaries) == 0 || len(s.Entrypoint) == 0 || s.Entrypoint[0] != s.Binaries[0].Path {
			t.Errorf("%s: entrypoint %v is not the first binary %v", s.Name, s.Entrypoint, s.Binaries)
		}
		if s.User == "" || s.WorkingDir != "/" {
			t.Errorf("%s: user %q, workdir %q", s.Name, s.User, s.WorkingDir)
		}
		for k, v := range s.Labels() {
			if v == "" {
				t.Errorf("%s: empty label %s", s.Name, k)
			}
		}
		if s.Project {
			if s.Repository != "example.com/r/"+s.Name || s.Tag != "1.2.3" || s.Version != "v1.2.3-4-gabc" || s.User != NonRoot {
				t.Errorf("%s: project image ignores the options: %+v", s.Name, s)
			}
		} else if s.Tag == "1.2.3" || s.Version == "v1.2.3-4-gabc" {
			t.Errorf("%s: a third-party image took the project's tag or version", s.Name)
		}
	}
	if _, err := Lookup(Specs(Options{}), "no-such-image"); err == nil {
		t.Error("Lookup of an unknown name succeeded")
	}
}

func TestIndexRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Load of an empty directory = %v, want ErrNotBuilt", err)
	}
	tarball := filepath.Join(dir, "pause.tar")
	if err := os.WriteFile(tarball, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := &Index{Images: []Image{
		{Name: Pause, Ref: "localhost/pause:3.10-local", Tarball: tarball, Digest: "sha256:aa", ConfigDigest: "sha256:bb"},
	}}
	if err := in.Write(dir); err != nil {
		t.Fatal(err)
	}
	// The file holds paths relative to the index, so bin/ can move.
	raw, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"tarball": "pause.tar"`).Match(raw) {
		t.Errorf("index.json does not hold a relative tarball path:\n%s", raw)
	}
	idx, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Get(Pause)
	if err != nil || img.Tarball != tarball || img.Ref != "localhost/pause:3.10-local" {
		t.Fatalf("Get(pause) = %+v, %v", img, err)
	}
	if ref, err := idx.Ref(Pause); err != nil || ref != img.Ref {
		t.Errorf("Ref(pause) = %q, %v", ref, err)
	}
	if _, err := idx.Get(CoreDNS); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("Get(coredns) = %v, want ErrNotBuilt", err)
	}
	if _, err := idx.Require(Pause, CoreDNS, Webhook); err == nil {
		t.Error("Require with missing images succeeded")
	}
	if got := idx.Tarballs(); !reflect.DeepEqual(got, []string{tarball}) {
		t.Errorf("Tarballs() = %v", got)
	}
	// A listed tarball that is gone is an error at Load, not at use.
	if err := os.Remove(tarball); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("Load with a missing tarball = %v, want ErrNotBuilt", err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"images":[{"name":"x"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Error("Load of an incomplete entry succeeded")
	}
}
