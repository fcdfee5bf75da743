package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// IndexFile is the name of the index hack/images writes next to the
// tarballs.
const IndexFile = "index.json"

// DefaultDir is where `make images` puts the tarballs and the index:
// <repository root>/bin/images.
func DefaultDir(repoRoot string) string { return filepath.Join(repoRoot, "bin", "images") }

// Image is one built image as the index records it.
type Image struct {
	Name string `json:"name"`
	// Ref is the reference the tarball is tagged with (repository:tag), the
	// one pods name and `ctr images import` / `kind load image-archive`
	// register.
	Ref string `json:"ref"`
	// Tarball is the docker-archive file. In index.json it is relative to
	// the index's directory; Load makes it absolute.
	Tarball string `json:"tarball"`
	// Digest is the image's manifest digest (sha256:...). The tarball is
	// also an OCI layout, so containerd keeps this manifest on import
	// (checked with ctr import and kind's exact import command): it is the
	// digest `ctr images ls` shows and the repo digest the CRI reports.
	Digest string `json:"digest"`
	// ConfigDigest is the image ID (the config blob's digest), what
	// `crictl images` lists as IMAGE ID.
	ConfigDigest string `json:"configDigest"`
	// Size is the tarball's size in bytes.
	Size int64 `json:"size"`
	// Inputs is the builder's fingerprint of everything the image was built
	// from (sources, go.mod/go.sum, toolchain, spec). A warm `make images`
	// skips an image whose fingerprint did not change.
	Inputs string `json:"inputs"`
	// BinarySHA256 is the hash of each binary in the image, by path.
	BinarySHA256 map[string]string `json:"binarySHA256"`
	// BuildSeconds is how long the last real build of this image took.
	BuildSeconds float64 `json:"buildSeconds"`
}

// Index is the content of bin/images/index.json.
type Index struct {
	// Dir is the directory the index was loaded from (not serialised).
	Dir    string  `json:"-"`
	Images []Image `json:"images"`
}

// ErrNotBuilt is returned (wrapped) when the index or an image is missing:
// run `make images`.
var ErrNotBuilt = errors.New("image not built: run `make images`")

// Load reads dir/index.json and checks that every tarball it lists exists.
// Tarball paths in the result are absolute.
func Load(dir string) (*Index, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(abs, IndexFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", filepath.Join(abs, IndexFile), ErrNotBuilt)
	}
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(abs, IndexFile), err)
	}
	idx.Dir = abs
	for i := range idx.Images {
		img := &idx.Images[i]
		if !filepath.IsAbs(img.Tarball) {
			img.Tarball = filepath.Join(abs, img.Tarball)
		}
		if _, err := os.Stat(img.Tarball); err != nil {
			return nil, fmt.Errorf("image %s: tarball %s: %w (%w)", img.Name, img.Tarball, err, ErrNotBuilt)
		}
	}
	return idx, nil
}

func parseIndex(data []byte) (*Index, error) {
	var idx Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, img := range idx.Images {
		switch {
		case img.Name == "" || img.Ref == "" || img.Tarball == "" || img.Digest == "":
			return nil, fmt.Errorf("incomplete entry %+v", img)
		case seen[img.Name]:
			return nil, fmt.Errorf("image %s listed twice", img.Name)
		}
		seen[img.Name] = true
	}
	return &idx, nil
}

// Get returns the image called name (one of the constants of this package).
func (x *Index) Get(name string) (Image, error) {
	for _, img := range x.Images {
		if img.Name == name {
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("image %s not in %s: %w", name, filepath.Join(x.Dir, IndexFile), ErrNotBuilt)
}

// Ref returns the reference of the image called name.
func (x *Index) Ref(name string) (string, error) {
	img, err := x.Get(name)
	return img.Ref, err
}

// Require returns the images called names, in that order, or an error
// naming every one that is missing.
func (x *Index) Require(names ...string) ([]Image, error) {
	var out []Image
	var missing []string
	for _, n := range names {
		img, err := x.Get(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		out = append(out, img)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("images %v not in %s: %w", missing, filepath.Join(x.Dir, IndexFile), ErrNotBuilt)
	}
	return out, nil
}

// Tarballs returns every tarball path, sorted by image name.
func (x *Index) Tarballs() []string {
	imgs := append([]Image(nil), x.Images...)
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	var out []string
	for _, img := range imgs {
		out = append(out, img.Tarball)
	}
	return out
}

// Write stores the index as dir/index.json (tarball paths relative to dir),
// sorted by name, atomically.
func (x *Index) Write(dir string) error {
	out := Index{Images: make([]Image, 0, len(x.Images))}
	for _, img := range x.Images {
		if rel, err := filepath.Rel(dir, img.Tarball); err == nil && filepath.IsAbs(img.Tarball) {
			img.Tarball = rel
		}
		out.Images = append(out.Images, img)
	}
	sort.Slice(out.Images, func(i, j int) bool { return out.Images[i].Name < out.Images[j].Name })
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, IndexFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, IndexFile))
}
