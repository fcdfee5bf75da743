package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mtls-demo/mtls-webhook/internal/images"
)

const testVersion = "v9.9.9-test"

// layerFiles reads the image's only layer into path -> header (+ content
// for regular files).
func layerFiles(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(h.Name, "/")
		hdrs[p] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[p] = b
		}
	}
	return hdrs, data
}

// TestWebhookImage builds the webhook image into a temporary directory and
// reads the docker-archive back: what a runtime would import.
func TestWebhookImage(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx := context.Background()
	b, err := newBuilder(ctx, root, out)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := images.Lookup(images.Specs(images.Options{Version: testVersion, Revision: "0123abc"}), images.Webhook)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Build(ctx, spec, false)
	if err != nil {
		t.Fatal(err)
	}

	// The index, through the reader the cluster code uses.
	idx, err := images.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := idx.Get(images.Webhook)
	if err != nil {
		t.Fatal(err)
	}
	if entry.Ref != "ghcr.io/mtls-demo/mtls-webhook:0.1.0" || entry.Tarball != filepath.Join(out, "mtls-webhook.tar") ||
		entry.Digest != res.Image.Digest || !strings.HasPrefix(entry.ConfigDigest, "sha256:") {
		t.Fatalf("index entry %+v", entry)
	}

	// docker-archive: manifest.json names the reference (kind load
	// image-archive and ctr import tag the image with it).
	tag, err := name.NewTag(entry.Ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(entry.Tarball, &tag)
	if err != nil {
		t.Fatalf("reading %s back as %s: %v", entry.Tarball, tag, err)
	}
	if d, err := img.Digest(); err != nil || d.String() != entry.Digest {
		t.Errorf("digest read back %v (%v), index says %s", d, err, entry.Digest)
	}
	if c, err := img.ConfigName(); err != nil || c.String() != entry.ConfigDigest {
		t.Errorf("config digest read back %v (%v), index says %s", c, err, entry.ConfigDigest)
	}
	checkOCILayout(t, entry)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/mtls-webhook"}) || !reflect.DeepEqual(c.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q, want [/mtls-webhook] [serve]", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.title":    "mtls-webhook",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.source":   "https://github.com/mtls-demo/mtls-webhook",
		"org.opencontainers.image.revision": "0123abc",
	} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if _, ok := c.ExposedPorts["10250/tcp"]; !ok {
		t.Errorf("exposed ports %v lack 10250/tcp", c.ExposedPorts)
	}

	hdrs, data := layerFiles(t, img)
	bin := hdrs["/mtls-webhook"]
	if bin == nil || bin.Mode&0o111 == 0 || bin.Uid != 0 {
		t.Fatalf("/mtls-webhook: %+v, want an executable owned by root", bin)
	}
	if !strings.Contains(string(data["/etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532:\n%s", data["/etc/passwd"])
	}
	if h := hdrs["/tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("/tmp: %+v, want mode 1777 (the webhook's default --cert-dir is under /tmp)", h)
	}

	// Static: an ELF executable without a program interpreter.
	exe := filepath.Join(t.TempDir(), "mtls-webhook")
	if err := os.WriteFile(exe, data["/mtls-webhook"], 0o755); err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has a PT_INTERP program header: not static")
		}
	}
	if ef.Machine != elf.EM_X86_64 {
		t.Errorf("machine %v, want x86-64", ef.Machine)
	}
	ef.Close()
	help, err := exec.Command(exe, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "-cert-dir") {
		t.Errorf("mtls-webhook --help: %v\n%s", err, help)
	}
	info, err := exec.Command("go", "version", "-m", exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\tbuild\tCGO_ENABLED=0\n", "\tbuild\t-trimpath=true\n"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("go version -m lacks %q:\n%s", want, info)
		}
	}
	if strings.Contains(string(info), "vcs.revision") {
		t.Error("VCS information stamped: the binary would change with every commit")
	}
	if !bytes.Contains(data["/mtls-webhook"], []byte(testVersion)) {
		t.Errorf("the binary does not contain its version %s (-X main.version)", testVersion)
	}

	// A second build with the same inputs keeps the tarball.
	again, err := b.Build(ctx, spec, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.How != "unchanged" || again.Image.Digest != entry.Digest {
		t.Errorf("second build: %q digest %s, want unchanged %s", again.How, again.Image.Digest, entry.Digest)
	}
	// A different version is a different image.
	spec.Version = testVersion + ".1"
	if fp1, fp2 := mustFingerprint(t, b, spec), entry.Inputs; fp1 == fp2 {
		t.Error("the fingerprint does not change with the version")
	}
}

// checkOCILayout reads the archive's OCI side (what containerd imports):
// index.json names the reference and points at the manifest the index
// recorded, and every blob the manifest lists is in the archive.
func checkOCILayout(t *testing.T, entry images.Image) {
	t.Helper()
	f, err := os.Open(entry.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Fatal("no oci-layout in the archive")
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	d := index.Manifests[0]
	if d.Digest.String() != entry.Digest || d.Annotations["io.containerd.image.name"] != entry.Ref {
		t.Errorf("index.json: %s named %q, want %s named %s", d.Digest, d.Annotations["io.containerd.image.name"], entry.Digest, entry.Ref)
	}
	blob := func(h v1.Hash) []byte { return files["blobs/"+h.Algorithm+"/"+h.Hex] }
	manifest := blob(d.Digest)
	if int64(len(manifest)) != d.Size {
		t.Fatalf("manifest blob: %d bytes, index.json says %d", len(manifest), d.Size)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(manifest)); h != d.Digest {
		t.Fatalf("manifest blob hashes to %s, want %s", h, d.Digest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest.String() != entry.ConfigDigest {
		t.Errorf("manifest config %s, index says %s", m.Config.Digest, entry.ConfigDigest)
	}
	for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		b := blob(desc.Digest)
		if h, _, _ := v1.SHA256(bytes.NewReader(b)); h != desc.Digest || int64(len(b)) != desc.Size {
			t.Errorf("blob %s: missing or wrong (%d bytes, hash %s)", desc.Digest, len(b), h)
		}
	}
}

func mustFingerprint(t *testing.T, b *builder, s images.Spec) string {
	t.Helper()
	fp, err := b.fingerprint(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// TestAssembleIsDeterministic: the same binaries give the same digest, so
// an unchanged image keeps its ID across rebuilds; a link is a symlink.
func TestAssembleIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	spec, err := images.Lookup(images.Specs(images.Options{}), images.CSIDriver)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for i, bin := range spec.Binaries {
		p := filepath.Join(dir, filepath.Base(bin.Path))
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 1000+i), 0o755); err != nil {
			t.Fatal(err)
		}
		files[bin.Path] = p
	}
	var digests []string
	for range 2 {
		img, err := assemble(spec, files)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
		hdrs, _ := layerFiles(t, img)
		if h := hdrs["/bin/umount"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "mount" {
			t.Fatalf("/bin/umount: %+v, want a symlink to mount", h)
		}
		if h := hdrs["/ko-app/cmd"]; h == nil || h.Size != 1000 {
			t.Fatalf("/ko-app/cmd: %+v", h)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "0:0" || cf.Config.WorkingDir != "/" {
			t.Errorf("csi-driver runs as %q in %q, want root in / (its --data-root is relative to /)", cf.Config.User, cf.Config.WorkingDir)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("two assemblies of the same files: %s != %s", digests[0], digests[1])
	}
}

// dockerfile is what the runtime stage of a Dockerfile says, plus the go
// build line of its build stage.
type dockerfile struct {
	labels     map[string]string
	user       string
	entrypoint []string
	cmd        []string
	ports      []string
	copyDest   string // COPY --from=build ... <dest>
	goBuild    string // the RUN line with go build, ARGs expanded
}

// parseDockerfile reads the instructions this repository's Dockerfiles use,
// expanding ${ARG}s with args.
func parseDockerfile(t *testing.T, path string, args map[string]string) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	acc := ""
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if strings.HasSuffix(strings.TrimRight(l, " \t"), "\\") {
			acc += strings.TrimSuffix(strings.TrimRight(l, " \t"), "\\") + " "
			continue
		}
		if s := strings.TrimSpace(acc + l); s != "" {
			lines = append(lines, s)
		}
		acc = ""
	}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return args[k] })
	}
	d := dockerfile{labels: map[string]string{}}
	stage := 0
	for _, l := range lines {
		kw, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(kw) {
		case "FROM":
			stage++
		case "RUN":
			if strings.Contains(rest, "go build") {
				d.goBuild = expand(rest)
			}
		case "LABEL":
			for rest != "" {
				k, v, ok := strings.Cut(rest, "=")
				if !ok {
					t.Fatalf("%s: LABEL %q", path, rest)
				}
				v = strings.TrimSpace(v)
				if !strings.HasPrefix(v, `"`) {
					t.Fatalf("%s: unquoted LABEL value %q", path, v)
				}
				end := strings.Index(v[1:], `"`) + 1
				d.labels[strings.TrimSpace(k)] = expand(v[1:end])
				rest = strings.TrimSpace(v[end+1:])
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("%s: %s is not exec form: %v", path, kw, err)
			}
			if strings.ToUpper(kw) == "CMD" {
				d.cmd = v
			} else {
				d.entrypoint = v
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				d.ports = append(d.ports, p)
			}
		case "COPY":
			if strings.HasPrefix(rest, "--from=build ") {
				f := strings.Fields(rest)
				d.copyDest = f[len(f)-1]
			}
		}
	}
	if stage != 2 {
		t.Fatalf("%s: %d stages, want 2", path, stage)
	}
	return d
}

// numericUser resolves USER name[:group] through the image's /etc/passwd
// and /etc/group (what the builder puts in).
func numericUser(t *testing.T, user string) string {
	t.Helper()
	lookup := func(table, name string) string {
		if _, err := strconv.Atoi(name); err == nil {
			return name // numeric IDs need no entry
		}
		for _, l := range strings.Split(table, "\n") {
			f := strings.Split(l, ":")
			if len(f) >= 3 && (f[0] == name || f[2] == name) {
				return f[2]
			}
		}
		t.Fatalf("%q is not in the image's passwd/group", name)
		return ""
	}
	u, g, hasGroup := strings.Cut(user, ":")
	out := lookup(etcPasswd, u)
	if hasGroup {
		out += ":" + lookup(etcGroup, g)
	}
	return out
}

// TestDockerfilesAgree: the Dockerfiles stay the reference for anyone with
// Docker; the builder must make the same images from them.
func TestDockerfilesAgree(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	specs := images.Specs(images.Options{Version: testVersion})
	cases := []struct {
		name, dockerfile string
		args             map[string]string
	}{
		{images.Webhook, "Dockerfile", map[string]string{"VERSION": testVersion}},
		{images.DemoBackend, "demo-apps/Dockerfile", map[string]string{"VERSION": testVersion, "APP": "backend"}},
		{images.DemoFrontend, "demo-apps/Dockerfile", map[string]string{"VERSION": testVersion, "APP": "frontend"}},
		{images.DemoClient, "demo-apps/Dockerfile", map[string]string{"VERSION": testVersion, "APP": "client"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := images.Lookup(specs, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			d := parseDockerfile(t, filepath.Join(root, tc.dockerfile), tc.args)
			labels := s.Labels()
			for k, v := range d.labels {
				if labels[k] != v {
					t.Errorf("LABEL %s=%q, builder has %q", k, v, labels[k])
				}
			}
			for _, k := range []string{"title", "version", "source"} {
				if _, ok := d.labels["org.opencontainers.image."+k]; !ok {
					t.Errorf("the Dockerfile has no org.opencontainers.image.%s label", k)
				}
			}
			if got := numericUser(t, d.user); got != s.User {
				t.Errorf("USER %s (%s), builder runs as %s", d.user, got, s.User)
			}
			if !reflect.DeepEqual(d.entrypoint, s.Entrypoint) {
				t.Errorf("ENTRYPOINT %q, builder %q", d.entrypoint, s.Entrypoint)
			}
			if !reflect.DeepEqual(d.cmd, s.Cmd) {
				t.Errorf("CMD %q, builder %q", d.cmd, s.Cmd)
			}
			sort.Strings(d.ports)
			ports := append([]string(nil), s.Ports...)
			sort.Strings(ports)
			if !reflect.DeepEqual(d.ports, ports) {
				t.Errorf("EXPOSE %v, builder %v", d.ports, ports)
			}
			bin := s.Binaries[0]
			if d.copyDest != bin.Path {
				t.Errorf("COPY --from=build to %s, builder puts the binary at %s", d.copyDest, bin.Path)
			}
			f := strings.Fields(d.goBuild)
			if len(f) == 0 || f[len(f)-1] != bin.Package || bin.Module != "." {
				t.Errorf("Dockerfile builds %q, builder builds %s in %s", d.goBuild, bin.Package, bin.Module)
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X " + bin.VersionVar + "=" + testVersion} {
				if !strings.Contains(d.goBuild, want) {
					t.Errorf("the Dockerfile's go build lacks %q: %s", want, d.goBuild)
				}
			}
		})
	}
}
