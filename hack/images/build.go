package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/mtls-demo/mtls-webhook/internal/images"
)

// builderVersion is part of every fingerprint: bump it when the way images
// are assembled changes, so a warm `make images` rebuilds them all.
const builderVersion = "hack/images/2"

// goEnv is the environment of every go list / go build: static linux/amd64
// binaries, each module on its own go.mod (no go.work).
var goEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off", "GOFLAGS=-mod=readonly"}

type builder struct {
	root, out string
	goVersion string
	modCache  string
	index     map[string]images.Image // the previous index, by name
}

// result is one image built (or kept).
type result struct {
	Image images.Image
	How   string // "built in 12.3s", "unchanged", ...
}

func newBuilder(ctx context.Context, root, out string) (*builder, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	b := &builder{root: root, out: out, index: map[string]images.Image{}}
	env, err := b.goOutput(ctx, root, "env", "-json", "GOVERSION", "GOMODCACHE")
	if err != nil {
		return nil, err
	}
	var ge struct{ GOVERSION, GOMODCACHE string }
	if err := json.Unmarshal([]byte(env), &ge); err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	b.goVersion, b.modCache = ge.GOVERSION, ge.GOMODCACHE
	// The previous index, if any: entries whose tarball is gone are dropped.
	if data, err := os.ReadFile(filepath.Join(out, images.IndexFile)); err == nil {
		var prev images.Index
		if err := json.Unmarshal(data, &prev); err == nil {
			for _, img := range prev.Images {
				if !filepath.IsAbs(img.Tarball) {
					img.Tarball = filepath.Join(out, img.Tarball)
				}
				if _, err := os.Stat(img.Tarball); err == nil {
					b.index[img.Name] = img
				}
			}
		}
	}
	return b, nil
}

// Build builds one image unless its fingerprint matches the index, writes
// its tarball and updates the index.
func (b *builder) Build(ctx context.Context, s images.Spec, force bool) (result, error) {
	for _, bin := range s.Binaries {
		if _, err := os.Stat(filepath.Join(b.root, bin.Module, "go.mod")); err != nil {
			return result{}, fmt.Errorf("module %s: %w", bin.Module, err)
		}
	}
	inputs, err := b.fingerprint(ctx, s)
	if err != nil {
		return result{}, err
	}
	prev, hadPrev := b.index[s.Name]
	if hadPrev && !force && prev.Inputs == inputs && prev.Ref == s.Ref() {
		return result{Image: prev, How: "unchanged"}, nil
	}

	start := time.Now()
	work := filepath.Join(b.out, ".build", s.Name)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return result{}, err
	}
	files := map[string]string{} // image path -> host file
	hashes := map[string]string{}
	for _, bin := range s.Binaries {
		host := filepath.Join(work, path.Base(bin.Path))
		if err := b.goBuild(ctx, s, bin, host); err != nil {
			return result{}, err
		}
		files[bin.Path] = host
		h, err := fileSHA256(host)
		if err != nil {
			return result{}, err
		}
		hashes[bin.Path] = h
	}

	// Same binaries and same reference as the tarball on disk: the image
	// would come out byte-identical (the assembly is deterministic).
	if hadPrev && !force && prev.Ref == s.Ref() && equalMaps(prev.BinarySHA256, hashes) && prev.Inputs != "" {
		if prevSpec, ok := specOf(prev); ok && prevSpec == specHash(s) {
			prev.Inputs = inputs
			b.index[s.Name] = prev
			return result{Image: prev, How: "binaries unchanged"}, b.writeIndex()
		}
	}

	img, err := assemble(s, files)
	if err != nil {
		return result{}, err
	}
	ref, err := name.NewTag(s.Ref(), name.StrictValidation)
	if err != nil {
		return result{}, fmt.Errorf("reference %s: %w", s.Ref(), err)
	}
	final := filepath.Join(b.out, s.Name+".tar")
	tmp := final + ".tmp"
	if err := writeArchive(tmp, ref, img); err != nil {
		return result{}, fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return result{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return result{}, err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return result{}, err
	}
	st, err := os.Stat(final)
	if err != nil {
		return result{}, err
	}
	entry := images.Image{
		Name: s.Name, Ref: s.Ref(), Tarball: final,
		Digest: digest.String(), ConfigDigest: cfg.String(), Size: st.Size(),
		Inputs: inputs, BinarySHA256: hashes,
		BuildSeconds: time.Since(start).Round(100 * time.Millisecond).Seconds(),
	}
	b.index[s.Name] = entry
	if err := os.RemoveAll(work); err != nil {
		return result{}, err
	}
	return result{Image: entry, How: fmt.Sprintf("built in %.1fs", entry.BuildSeconds)}, b.writeIndex()
}

// specOf returns the spec hash recorded in an index entry's fingerprint.
func specOf(img images.Image) (string, bool) {
	_, spec, ok := strings.Cut(img.Inputs, "/spec:")
	return spec, ok
}

// specHash covers the spec and the builder version: with both unchanged,
// the same binaries make the same image.
func specHash(s images.Spec) string {
	data, _ := json.Marshal(s)
	sum := sha256.Sum256(append([]byte(builderVersion+"\n"), data...))
	return hex.EncodeToString(sum[:8])
}

func (b *builder) writeIndex() error {
	idx := images.Index{}
	for _, img := range b.index {
		idx.Images = append(idx.Images, img)
	}
	return idx.Write(b.out)
}

// goBuild builds one binary as the Dockerfiles do: static, -trimpath,
// stripped, version stamped. (-ldflags are not in `go version -m` output
// of a -trimpath build; the version is in the binary's data.)
func (b *builder) goBuild(ctx context.Context, s images.Spec, bin images.Binary, out string) error {
	ldflags := "-s -w"
	if bin.VersionVar != "" {
		ldflags += " -X " + bin.VersionVar + "=" + s.Version
	}
	for _, st := range bin.Stamps {
		ldflags += " -X " + st
	}
	// -buildvcs=false: like the Docker build (.dockerignore leaves .git
	// out), and the binary does not change with every commit.
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, bin.Package}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(b.root, bin.Module)
	cmd.Env = append(os.Environ(), goEnv...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), bin.Module, err, stderr.String())
	}
	return nil
}

func (b *builder) goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), goEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return string(out), nil
}

// fingerprint hashes everything a binary of s is built from: the builder
// and toolchain versions, the spec (ldflags, paths, config), each module's
// go.mod and go.sum (which pin every file under GOMODCACHE) and the
// contents of every package outside the module cache that the main
// packages import (this repository's own sources). It ends with
// "/spec:<hash of the spec>".
func (b *builder) fingerprint(ctx context.Context, s images.Spec) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", builderVersion, b.goVersion, strings.Join(goEnv, " "))
	spec, _ := json.Marshal(s)
	h.Write(spec)
	for _, bin := range s.Binaries {
		mod := filepath.Join(b.root, bin.Module)
		for _, f := range []string{"go.mod", "go.sum"} {
			if err := hashFile(h, filepath.Join(mod, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", err
			}
		}
		out, err := b.goOutput(ctx, mod, "list", "-deps",
			"-f", `{{if not .Standard}}{{.Dir}}{{range .GoFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{range .SFiles}}|{{.}}{{end}}{{range .SysoFiles}}|{{.}}{{end}}{{end}}`,
			bin.Package)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(out, "\n") {
			fields := strings.Split(line, "|")
			dir := fields[0]
			if dir == "" || strings.HasPrefix(dir, b.modCache+string(filepath.Separator)) {
				continue
			}
			names := append([]string(nil), fields[1:]...)
			sort.Strings(names)
			for _, n := range names {
				if n == "" {
					continue
				}
				fmt.Fprintf(h, "%s/%s\n", dir, n)
				if err := hashFile(h, filepath.Join(dir, n)); err != nil {
					return "", err
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)) + "/spec:" + specHash(s), nil
}

func hashFile(w io.Writer, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func fileSHA256(file string) (string, error) {
	h := sha256.New()
	if err := hashFile(h, file); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
