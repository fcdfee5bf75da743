package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mtls-demo/mtls-webhook/internal/images"
)

// epoch is every file's mtime and the image's creation time, so that the
// same binaries give the same digest.
var epoch = time.Unix(0, 0).UTC()

// The users and groups of distroless/static (root, nobody, nonroot): the
// Dockerfiles' `USER nonroot:nonroot` resolves through these, and programs
// that look their user up (os/user) find it.
const (
	etcPasswd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	etcGroup = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"nonroot:x:65532:\n"
	etcNsswitch = "hosts: files dns\n"
)

// entry is one file system object of the layer.
type entry struct {
	hdr  tar.Header
	host string // for regular files: the file to copy
	data string // for regular files without host: the content
}

// layerEntries is what goes into the image's only layer: the base a
// distroless/static image has that matters to a static Go program (the
// passwd/group files, /tmp, the nonroot home), then the binaries.
func layerEntries(s images.Spec, files map[string]string) (map[string]*entry, error) {
	es := map[string]*entry{}
	dir := func(p string, mode int64, uid int) {
		es[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: uid, Gid: uid}}
	}
	file := func(p, data string) {
		es[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: int64(len(data))}, data: data}
	}
	dir("etc", 0o755, 0)
	file("etc/passwd", etcPasswd)
	file("etc/group", etcGroup)
	file("etc/nsswitch.conf", etcNsswitch)
	dir("home", 0o755, 0)
	dir("home/nonroot", 0o700, 65532)
	dir("root", 0o700, 0)
	dir("tmp", 0o1777, 0)
	for _, bin := range s.Binaries {
		host, ok := files[bin.Path]
		if !ok {
			return nil, fmt.Errorf("no file built for %s", bin.Path)
		}
		st, err := os.Stat(host)
		if err != nil {
			return nil, err
		}
		p := strings.TrimPrefix(path.Clean(bin.Path), "/")
		es[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o755, Size: st.Size()}, host: host}
		for _, l := range bin.Links {
			lp := strings.TrimPrefix(path.Clean(l), "/")
			target := "/" + p
			if path.Dir(lp) == path.Dir(p) {
				target = path.Base(p) // relative, like busybox's links
			}
			es[lp] = &entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: lp, Linkname: target, Mode: 0o777}}
		}
	}
	// Parent directories of everything, 0755 root.
	for p := range es {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := es[d]; !ok {
				dir(d, 0o755, 0)
			}
		}
	}
	return es, nil
}

// writeLayer writes the layer as a gzip-compressed tar, entries sorted by
// path (parents first), every time stamp the epoch.
func writeLayer(w io.Writer, es map[string]*entry) error {
	names := make([]string, 0, len(es))
	for p := range es {
		names = append(names, p)
	}
	sort.Strings(names)
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, p := range names {
		e := es[p]
		hdr := e.hdr
		hdr.ModTime, hdr.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(&hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if e.host == "" {
			if _, err := io.WriteString(tw, e.data); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(e.host)
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, f)
		f.Close()
		if err != nil {
			return err
		}
		if n != hdr.Size {
			return fmt.Errorf("%s changed size while being copied", e.host)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// assemble builds the image of s from the binaries in files (image path ->
// host path): empty base, one layer, the config a Dockerfile would give.
// The compressed layer is written next to the first binary.
func assemble(s images.Spec, files map[string]string) (v1.Image, error) {
	es, err := layerEntries(s, files)
	if err != nil {
		return nil, err
	}
	layerPath := filepath.Join(filepath.Dir(files[s.Binaries[0].Path]), "layer.tar.gz")
	f, err := os.Create(layerPath)
	if err != nil {
		return nil, err
	}
	if err := writeLayer(f, es); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(layerPath)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "hack/images: " + describe(s),
			Comment:   "static Go binaries on an empty base",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Author = "hack/images"
	cf.Config = v1.Config{
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		User:       s.User,
		Env:        s.Env,
		WorkingDir: s.WorkingDir,
		Labels:     s.Labels(),
	}
	if len(s.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

func describe(s images.Spec) string {
	var parts []string
	for _, b := range s.Binaries {
		parts = append(parts, fmt.Sprintf("%s (%s in %s)", b.Path, b.Package, b.Module))
	}
	return strings.Join(parts, ", ")
}
