// Command images builds every container image of this repository without a
// Docker engine or a registry: each is one or more static Go binaries
// (CGO_ENABLED=0, -trimpath, version stamped with -ldflags) in a single tar
// layer on an empty base, with the USER, ENTRYPOINT, ENV, WORKDIR, EXPOSE and
// OCI labels the Dockerfiles (or the upstream projects' image builds) give.
// The list of images is internal/images.Specs.
//
//	go run ./hack/images [-out bin/images] [-registry R] [-tag T] [-version V] [-only a,b] [-force]
//
// Output: one docker-archive tarball per image, <out>/<name>.tar, tagged
// with the image's reference (what `ctr images import` and `kind load
// image-archive` read), and <out>/index.json (read with internal/images.Load).
// An image whose inputs (sources, go.mod/go.sum, toolchain, spec) did not
// change since the last build is not rebuilt; one whose binaries came out
// byte-identical keeps its tarball. Builds run one after another: `go build`
// already uses every core.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/images"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("[images] ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	var (
		out      = flag.String("out", "", "output directory (default <repo>/bin/images)")
		registry = flag.String("registry", images.DefaultRegistry, "registry of the project's images (REGISTRY)")
		tag      = flag.String("tag", images.DefaultTag, "tag of the project's images (IMAGE_TAG)")
		version  = flag.String("version", "", "version stamped into the project's binaries and labels (VERSION; default git describe)")
		revision = flag.String("revision", "", "org.opencontainers.image.revision of the project's images (default git HEAD)")
		only     = flag.String("only", "", "comma-separated image names to build (default: all); see -list")
		force    = flag.Bool("force", false, "rebuild even when the inputs did not change")
		list     = flag.Bool("list", false, "print the image names and references, then exit")
		tarballs = flag.Bool("tarballs", false, "print the tarball paths of the built images (-only: of those) from the index in -out, then exit")
	)
	flag.Parse()

	root, err := repoRoot()
	if err != nil {
		return err
	}
	if *version == "" {
		*version = gitOutput(root, "describe", "--tags", "--always", "--dirty")
	}
	if *revision == "" {
		*revision = gitOutput(root, "rev-parse", "HEAD")
	}
	specs := images.Specs(images.Options{Registry: *registry, Tag: *tag, Version: *version, Revision: *revision})
	if *list {
		for _, s := range specs {
			fmt.Printf("%-30s %s\n", s.Name, s.Ref())
		}
		return nil
	}
	if *only != "" {
		var sel []images.Spec
		for _, n := range strings.Split(*only, ",") {
			s, err := images.Lookup(specs, strings.TrimSpace(n))
			if err != nil {
				return err
			}
			sel = append(sel, s)
		}
		specs = sel
	}
	if *out == "" {
		*out = images.DefaultDir(root)
	}

	if *tarballs {
		idx, err := images.Load(*out)
		if err != nil {
			return err
		}
		for _, s := range specs {
			img, err := idx.Get(s.Name)
			if err != nil {
				return err
			}
			if img.Ref != s.Ref() {
				return fmt.Errorf("%s in %s is %s, want %s: run `make images`", s.Name, *out, img.Ref, s.Ref())
			}
			fmt.Println(img.Tarball)
		}
		return nil
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := newBuilder(ctx, root, *out)
	if err != nil {
		return err
	}
	start := time.Now()
	var failed []string
	for _, s := range specs {
		res, err := b.Build(ctx, s, *force)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Printf("%s: FAILED: %v", s.Name, err)
			failed = append(failed, s.Name)
			continue
		}
		log.Printf("%-30s %-50s %7.1f MB  %s", s.Name, res.Image.Ref, float64(res.Image.Size)/1e6, res.How)
	}
	_ = os.Remove(filepath.Join(*out, ".build")) // only when empty: a failed build's files stay for a look
	log.Printf("%d images in %s, index %s", len(specs)-len(failed), time.Since(start).Round(100*time.Millisecond),
		filepath.Join(*out, images.IndexFile))
	if len(failed) > 0 {
		return fmt.Errorf("%d image(s) failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// repoRoot walks up from the working directory to the main module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/mtls-demo/mtls-webhook\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the mtls-webhook repository (no go.mod of github.com/mtls-demo/mtls-webhook above the working directory)")
		}
		dir = parent
	}
}

func gitOutput(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
