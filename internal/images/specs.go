// Package images is the one list of container images this repository
// builds (Specs) and the reader of what `make images` wrote (Load, Index).
//
// hack/images builds every Spec into a docker-archive tarball under
// bin/images and records name, reference, tarball and digest in
// bin/images/index.json. The local cluster, `make demo`, the e2e suite and
// `kind load image-archive` all take the images from there, so no code needs
// to spell an image reference or a path itself:
//
//	idx, err := images.Load(images.DefaultDir(repoRoot))
//	img, err := idx.Get(images.Pause)
//	// img.Ref == "localhost/pause:3.10-local", img.Tarball == ".../bin/images/pause.tar"
//
// No image is ever pulled: every one is a static Go binary built from a
// pinned Go module, on an empty base.
package images

import (
	"fmt"
	"sort"
)

// Image names: the keys of Specs, of the index and the tarballs' base names.
const (
	Webhook      = "mtls-webhook"
	DemoBackend  = "demo-backend"
	DemoFrontend = "demo-frontend"
	DemoClient   = "demo-client"
	// E2EToolbox is the e2e suite's own tool image (test/toolbox): fetch
	// instead of curl, capture instead of tcpdump and tshark.
	E2EToolbox = "e2e-toolbox"

	CertManagerController      = "cert-manager-controller"
	CertManagerCAInjector      = "cert-manager-cainjector"
	CertManagerWebhook         = "cert-manager-webhook"
	CertManagerStartupAPICheck = "cert-manager-startupapicheck"

	CSIDriver              = "cert-manager-csi-driver"
	CSINodeDriverRegistrar = "csi-node-driver-registrar"
	CSILivenessProbe       = "livenessprobe"
	CoreDNS                = "coredns"
	Pause                  = "pause"
)

// The project's own images take their registry and tag from make/images.mk
// (REGISTRY, IMAGE_TAG); these defaults are what the charts' values.yaml
// name, so `helm install` with default values runs them.
const (
	DefaultRegistry = "ghcr.io/mtls-demo"
	DefaultTag      = "0.1.0"
	// LocalRegistry prefixes the images of third-party components built
	// here: "localhost/..." can never be pulled from anywhere, so a missing
	// import fails with ErrImageNeverPull / ImagePullBackOff at once instead
	// of fetching someone else's image.
	LocalRegistry = "localhost"
)

// Users the images run as. NonRoot matches distroless' "nonroot" and the
// charts' securityContext.
const (
	NonRoot = "65532:65532"
	Root    = "0:0"
	// CertManagerUser is what cert-manager's own Containerfiles set
	// (hack/containers/Containerfile.* in the v1.19.2 module: USER 1000).
	CertManagerUser = "1000"
)

// Source is the org.opencontainers.image.source of the project's images.
const Source = "https://github.com/mtls-demo/mtls-webhook"

// Binary is one static Go binary placed in an image.
type Binary struct {
	// Module is the Go module directory to build in, relative to the
	// repository root: "." for the main module, "hack/tools/<x>" for a
	// tools module that pins a third-party component.
	Module string `json:"module"`
	// Package is the main package, as `go build` takes it in Module.
	Package string `json:"package"`
	// Path is where the binary lives in the image (absolute).
	Path string `json:"path"`
	// VersionVar, when set, is stamped with the spec's Version through
	// -ldflags "-X <VersionVar>=<Version>".
	VersionVar string `json:"versionVar,omitempty"`
	// Stamps are further -X name=value pairs (no spaces).
	Stamps []string `json:"stamps,omitempty"`
	// Links are further absolute paths in the image that are symbolic links
	// to Path (a busybox-style binary answering to several names).
	Links []string `json:"links,omitempty"`
}

// Spec says how one image is built: what goes in and how it runs. It holds
// what a Dockerfile would: the binaries, USER, ENTRYPOINT, CMD, ENV,
// WORKDIR, EXPOSE and LABEL.
type Spec struct {
	Name       string `json:"name"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	// Version is stamped into the main binary and labelled
	// org.opencontainers.image.version.
	Version string `json:"version"`
	// Revision is labelled org.opencontainers.image.revision: the git
	// commit for the project's images, the upstream version for others.
	Revision    string   `json:"revision"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Source      string   `json:"source"`
	Binaries    []Binary `json:"binaries"`
	Entrypoint  []string `json:"entrypoint"`
	Cmd         []string `json:"cmd,omitempty"`
	User        string   `json:"user"`
	Env         []string `json:"env,omitempty"`
	WorkingDir  string   `json:"workingDir"`
	// Ports are exposed ports, "10250/tcp".
	Ports []string `json:"ports,omitempty"`
	// Project is true for the images this repository publishes (webhook,
	// demo apps), whose registry, tag and version come from make.
	Project bool `json:"project"`
}

// Ref is the image reference, repository:tag.
func (s Spec) Ref() string { return s.Repository + ":" + s.Tag }

// Labels are the image's OCI labels.
func (s Spec) Labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":    s.Title,
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.source":   s.Source,
		"org.opencontainers.image.revision": s.Revision,
	}
	if s.Description != "" {
		l["org.opencontainers.image.description"] = s.Description
	}
	return l
}

// Options are the inputs make passes to the project's images.
type Options struct {
	Registry string // REGISTRY, default DefaultRegistry
	Tag      string // IMAGE_TAG, default DefaultTag
	Version  string // VERSION (git describe), default "dev"
	Revision string // git commit, default "unknown"
}

// defaultPath is the PATH of distroless and of most base images.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Specs returns every image this repository builds, in build order. This is
// the one list: the builder, the index and every consumer derive from it.
func Specs(o Options) []Spec {
	if o.Registry == "" {
		o.Registry = DefaultRegistry
	}
	if o.Tag == "" {
		o.Tag = DefaultTag
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Revision == "" {
		o.Revision = "unknown"
	}
	project := func(name, pkg, bin, title, desc string, cmd []string, ports ...string) Spec {
		return Spec{
			Name: name, Repository: o.Registry + "/" + name, Tag: o.Tag,
			Version: o.Version, Revision: o.Revision,
			Title: title, Description: desc, Source: Source,
			Binaries:   []Binary{{Module: ".", Package: pkg, Path: bin, VersionVar: "main.version"}},
			Entrypoint: []string{bin}, Cmd: cmd,
			User: NonRoot, Env: []string{defaultPath}, WorkingDir: "/",
			Ports: ports, Project: true,
		}
	}
	// Third-party components: the version is the pinned upstream one, the
	// image says where its source is and that it was built here.
	local := func(name, tag, version, source string, bins []Binary, entry []string, user string) Spec {
		return Spec{
			Name: name, Repository: LocalRegistry + "/" + name, Tag: tag,
			Version: version, Revision: version,
			Title: name, Source: source,
			Description: name + " " + version + ", built from its Go module by hack/images",
			Binaries:    bins, Entrypoint: entry, User: user,
			Env: []string{defaultPath}, WorkingDir: "/",
		}
	}
	const (
		cm        = "hack/tools/certmanager"
		cmVersion = "v1.19.2"
		cmSource  = "https://github.com/cert-manager/cert-manager"
		cmVerVar  = "github.com/cert-manager/cert-manager/pkg/util.AppVersion"
	)
	certManager := func(name, component string) Spec {
		bin := "/app/cmd/" + component + "/" + component // as cert-manager's Containerfiles
		return local(name, cmVersion, cmVersion, cmSource,
			[]Binary{{Module: cm, Package: "./cmd/" + component, Path: bin, VersionVar: cmVerVar}},
			[]string{bin}, CertManagerUser)
	}
	const sidecars = "hack/tools/csisidecars"
	// cert-manager's csi-driver is built by ko: the binary is /ko-app/<last
	// element of the import path> on a base that runs as root (its chart
	// sets runAsUser: 0: mounts need it). csi-lib mounts through
	// k8s.io/mount-utils, which execs mount(8) and umount(8): the image
	// carries a static mount/umount of ours (the upstream base,
	// base-static-csi, ships util-linux's).
	csiDriver := local(CSIDriver, "v0.12.0", "v0.12.0", "https://github.com/cert-manager/csi-driver",
		[]Binary{
			{Module: "hack/tools/csidriver", Package: "github.com/cert-manager/csi-driver/cmd", Path: "/ko-app/cmd",
				VersionVar: "github.com/cert-manager/csi-driver/internal/version.AppVersion",
				// The driver warns unless both are set; a module zip has no
				// commit, so the version names it.
				Stamps: []string{"github.com/cert-manager/csi-driver/internal/version.GitCommit=v0.12.0"}},
			{Module: sidecars, Package: "./cmd/mount", Path: "/bin/mount", Links: []string{"/bin/umount"}},
		},
		[]string{"/ko-app/cmd"}, Root)
	csiDriver.Env = append(csiDriver.Env, "KO_DATA_PATH=/var/run/ko")

	registrar := local(CSINodeDriverRegistrar, "v2.15.0-local", "v2.15.0-local", Source+"/tree/main/"+sidecars,
		[]Binary{{Module: sidecars, Package: "./cmd/registrar", Path: "/csi-node-driver-registrar", VersionVar: "main.version"}},
		[]string{"/csi-node-driver-registrar"}, Root)
	registrar.Description = "kubelet plugin registration for CSI drivers (stands in for kubernetes-csi/node-driver-registrar v2.15.0)"
	liveness := local(CSILivenessProbe, "v2.17.0-local", "v2.17.0-local", Source+"/tree/main/"+sidecars,
		[]Binary{{Module: sidecars, Package: "./cmd/livenessprobe", Path: "/livenessprobe", VersionVar: "main.version"}},
		[]string{"/livenessprobe"}, Root)
	liveness.Description = "/healthz from CSI Probe (stands in for kubernetes-csi/livenessprobe v2.17.0)"
	// CoreDNS' own image: /coredns as root, ports 53/udp, 53/tcp.
	coredns := local(CoreDNS, "v1.15.0", "v1.15.0", "https://github.com/coredns/coredns",
		[]Binary{{Module: "hack/tools/coredns", Package: "github.com/coredns/coredns", Path: "/coredns"}},
		[]string{"/coredns"}, Root)
	coredns.Ports = []string{"53/tcp", "53/udp"}
	pause := local(Pause, "3.10-local", "3.10-local", Source+"/tree/main/hack/pause",
		[]Binary{{Module: ".", Package: "./hack/pause", Path: "/pause", VersionVar: "main.version"}},
		[]string{"/pause"}, "65535:65535") // registry.k8s.io/pause runs as 65535
	pause.Description = "pod sandbox: sleeps until SIGTERM/SIGINT and reaps zombies"

	return []Spec{
		project(Webhook, "./cmd/webhook", "/mtls-webhook", "mtls-webhook",
			"Mutating admission webhook injecting cert-manager csi-driver mTLS volumes",
			[]string{"serve"}, "8080/tcp", "8081/tcp", "10250/tcp"),
		project(DemoBackend, "./demo-apps/backend", "/app", "mtls-demo-backend", "", nil, "8080/tcp"),
		project(DemoFrontend, "./demo-apps/frontend", "/app", "mtls-demo-frontend", "", nil, "8080/tcp"),
		project(DemoClient, "./demo-apps/client", "/app", "mtls-demo-client", "", nil, "8080/tcp"),
		project(E2EToolbox, "./test/toolbox", "/toolbox", "mtls-e2e-toolbox",
			"The e2e suite's requests (fetch) and packet capture (capture)", nil),
		certManager(CertManagerController, "controller"),
		certManager(CertManagerCAInjector, "cainjector"),
		certManager(CertManagerWebhook, "webhook"),
		certManager(CertManagerStartupAPICheck, "startupapicheck"),
		csiDriver, registrar, liveness, coredns, pause,
	}
}

// Names returns the names of every image, sorted.
func Names() []string {
	var names []string
	for _, s := range Specs(Options{}) {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the spec called name.
func Lookup(specs []Spec, name string) (Spec, error) {
	for _, s := range specs {
		if s.Name == name {
			return s, nil
		}
	}
	return Spec{}, fmt.Errorf("no image %q (have %v)", name, Names())
}
