// Package mutate turns an opted-in pod into an mTLS pod: it adds the
// cert-manager CSI volume, mounts it read-only into the selected containers,
// sets the certificate env vars, optionally swaps in the demo image, and
// stamps the status annotation.
//
// Mutate is pure: no I/O, no globals, no clock. Whatever needs the cluster
// (the Services that select the pod) is looked up by the caller and passed
// in. Everything is added or replaced by name, so applying Mutate to its own
// output changes nothing.
package mutate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// Names injected into the pod. The demo apps and the Helm charts rely on
// them, so they are part of the contract and never change silently.
const (
	// VolumeName is the name of the injected CSI volume.
	VolumeName = "mtls-certs"
	// Driver is the cert-manager CSI driver that issues the certificate.
	Driver = "csi.cert-manager.io"

	EnvUseMTLS  = "USE_MTLS"
	EnvCertFile = "MTLS_CERT_FILE"
	EnvKeyFile  = "MTLS_KEY_FILE"
	EnvCAFile   = "MTLS_CA_FILE"

	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"

	// StatusPrefix starts the value of the status annotation; a short hash
	// of the effective configuration follows it.
	StatusPrefix = "injected-"

	// DefaultContainerAnnotation is kubectl's way to name a pod's main
	// container; with mtls.demo/app it picks the container whose image is
	// swapped.
	DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"
)

// CSI volume attribute keys, as defined by csi-driver's pkg/apis/v1alpha1.
// They are repeated here so that this package stays free of the driver's
// dependency tree; a test pins them to the driver's constants.
const (
	AttrIssuerName  = "csi.cert-manager.io/issuer-name"
	AttrIssuerKind  = "csi.cert-manager.io/issuer-kind"
	AttrIssuerGroup = "csi.cert-manager.io/issuer-group"
	AttrCommonName  = "csi.cert-manager.io/common-name"
	AttrDNSNames    = "csi.cert-manager.io/dns-names"
	AttrURISANs     = "csi.cert-manager.io/uri-sans"
	AttrDuration    = "csi.cert-manager.io/duration"
	AttrRenewBefore = "csi.cert-manager.io/renew-before"
	AttrKeyAlg      = "csi.cert-manager.io/key-algorithm"
	AttrKeySize     = "csi.cert-manager.io/key-size"
	AttrKeyUsages   = "csi.cert-manager.io/key-usages"
	AttrCertFile    = "csi.cert-manager.io/certificate-file"
	AttrKeyFile     = "csi.cert-manager.io/privatekey-file"
	AttrCAFile      = "csi.cert-manager.io/ca-file"
	AttrFSGroup     = "csi.cert-manager.io/fs-group"
)

// meshProxies are the containers service meshes add to a pod, by name:
// Istio's istio-proxy sidecar and its istio-init and istio-validation init
// containers, Linkerd's linkerd-proxy sidecar and its linkerd-init and
// linkerd-network-validator init containers. Mutating webhooks run in name
// order, so istio-sidecar-injector and linkerd-proxy-injector have usually
// added them before this webhook sees the pod.
//
// A proxy gets its own certificate from its mesh, runs as its own user
// (istio-proxy as 1337:1337, linkerd-proxy as 2102) and has no use for the
// files. So when mtls.demo/containers is not set, a proxy is not selected,
// and with that it does not take part in the one-group rule of fsGroup
// either, which it would otherwise fail. Naming a proxy in
// mtls.demo/containers selects it like any other container.
var meshProxies = []string{
	"istio-proxy", "istio-init", "istio-validation",
	"linkerd-proxy", "linkerd-init", "linkerd-network-validator",
}

// IsMeshProxy reports whether name is one of the service-mesh containers
// that are not selected by default.
func IsMeshProxy(name string) bool { return slices.Contains(meshProxies, name) }

// DemoImageGroup is the group the demo images run as (distroless nonroot,
// 65532, in demo-apps/Dockerfile). When mtls.demo/app swaps in a demo image and the pod
// names no group of its own, the certificate files are made readable by it.
const DemoImageGroup int64 = 65532

// Options are the webhook-wide settings Mutate needs beyond a pod's Config.
type Options struct {
	// FrontendImage and BackendImage replace the target container's image
	// when mtls.demo/app asks for that role.
	FrontendImage string
	BackendImage  string
	// ClusterDomain ends the fully qualified Service names derived for the
	// certificate (svc.ns.svc.<ClusterDomain>).
	ClusterDomain string
}

// Result is what Mutate produced.
type Result struct {
	// Pod is the mutated pod. The input is never changed, but the two share
	// what Mutate leaves alone: DeepCopy before changing either.
	Pod *corev1.Pod
	// Attributes are the CSI volume attributes that were injected, handed on
	// to the driver's own validation.
	Attributes map[string]string
	// Warnings are soft problems the user should see, such as an env var of
	// theirs that wins over the injected value.
	Warnings []string
}

// AttributeKeys returns every volume attribute the webhook may write, in a
// fixed order.
func AttributeKeys() []string {
	return []string{
		AttrIssuerName, AttrIssuerKind, AttrIssuerGroup, AttrCommonName, AttrDNSNames, AttrURISANs,
		AttrDuration, AttrRenewBefore, AttrKeyAlg, AttrKeySize, AttrKeyUsages,
		AttrCertFile, AttrKeyFile, AttrCAFile, AttrFSGroup,
	}
}

// attributeSource maps each injected attribute to the annotation whose value
// it carries, so that an error about the attribute can point at the
// annotation the user wrote.
var attributeSource = map[string]string{
	AttrIssuerName:  annotations.Issuer,
	AttrIssuerKind:  annotations.IssuerKind,
	AttrIssuerGroup: annotations.IssuerGroup,
	AttrCommonName:  annotations.CommonName,
	AttrDNSNames:    annotations.DNSNames,
	AttrURISANs:     annotations.URISANs,
	AttrDuration:    annotations.Duration,
	AttrRenewBefore: annotations.RenewBefore,
	AttrKeyAlg:      annotations.KeyAlgorithm,
	AttrKeySize:     annotations.KeySize,
	AttrFSGroup:     annotations.FSGroup,
}

// AnnotationFor returns the annotation that sets a CSI attribute, or
// mtls.demo/enable for attributes the webhook fills in by itself.
func AnnotationFor(attr string) string {
	if a, ok := attributeSource[attr]; ok {
		return a
	}
	return annotations.Enable
}

// Mutate returns a copy of pod with the mTLS volume, mounts, env vars, image
// and status annotation of cfg. services are the Services of the pod's
// namespace; those whose selector matches the pod give the DNS names when
// cfg has none. Errors name the annotation (or pod field) that makes the pod
// impossible to inject.
func Mutate(pod *corev1.Pod, cfg annotations.Config, services []corev1.Service, opts Options) (Result, field.ErrorList) {
	out := copyForMutation(pod)
	var (
		errs     field.ErrorList
		warnings []string
	)

	if len(out.Spec.Containers) == 0 {
		return Result{}, field.ErrorList{field.Required(field.NewPath("spec", "containers"), "a pod needs a container to receive the certificate")}
	}
	if podOS := out.Spec.OS; podOS != nil && podOS.Name == corev1.Windows {
		return Result{}, field.ErrorList{field.Forbidden(field.NewPath("spec", "os", "name"),
			fmt.Sprintf("the cert-manager CSI driver has no Windows plugin, so a windows pod would never mount its certificate: remove %s, or run the workload on Linux", annotations.Enable))}
	}
	targets, el := selectContainers(out, cfg)
	errs = append(errs, el...)

	volIdx := slices.IndexFunc(out.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == VolumeName })
	if volIdx >= 0 && !isOurVolume(out.Spec.Volumes[volIdx]) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "volumes").Index(volIdx).Child("name"), VolumeName,
			fmt.Sprintf("the pod already has a volume named %s that is not a %s volume; rename it, or remove %s", VolumeName, Driver, annotations.Enable)))
	}

	for i, v := range out.Spec.Volumes {
		if v.Name != VolumeName && isOurVolume(v) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "volumes").Index(i).Child("name"), fmt.Sprintf(
				"volume %s: a pod may have one %s volume, the %s volume this webhook writes with the pod's own identity; remove this one",
				v.Name, Driver, VolumeName)))
		}
	}

	for _, tg := range targets {
		errs = append(errs, checkMountConflict(tg.container(out), cfg.MountPath)...)
	}

	image := ""
	switch cfg.App {
	case annotations.AppFrontend:
		image = opts.FrontendImage
	case annotations.AppBackend:
		image = opts.BackendImage
	}
	if cfg.App != "" && image == "" {
		errs = append(errs, field.Invalid(annotations.PathFor(annotations.App), cfg.App,
			fmt.Sprintf("this webhook has no image for the %s role; start it with --%s-image", cfg.App, cfg.App)))
	}
	if image != "" && len(targets) > 0 && !slices.ContainsFunc(targets, func(tg target) bool { return !tg.init }) {
		errs = append(errs, field.Invalid(annotations.PathFor(annotations.App), cfg.App, fmt.Sprintf(
			"the %s demo image replaces the image of a selected container, but %s selects native sidecars only; add the app's container to it",
			cfg.App, annotations.Containers)))
	}
	gid, warning, el := fsGroup(out, cfg, targets, image != "")
	errs = append(errs, el...)
	if warning != "" {
		warnings = append(warnings, warning)
	}
	if len(errs) > 0 {
		return Result{}, errs
	}

	var derived []string
	if cfg.DNSNames == nil { // explicit names win; derive only when needed
		derived = DeriveDNSNames(out, services, opts.ClusterDomain)
		if len(derived) == 0 {
			warnings = append(warnings, fmt.Sprintf(
				"no Service in namespace %s selects this pod, so its certificate has no DNS names, only its SPIFFE ID: create the Service before the workload, or set %s",
				out.Namespace, annotations.DNSNames))
		}
	}
	cfg.URISANs = withoutOwnID(cfg.URISANs, PodIdentity(out))
	attrs := Attributes(cfg, derived)
	if gid != nil {
		attrs[AttrFSGroup] = strconv.FormatInt(*gid, 10)
	}

	volume := corev1.Volume{
		Name: VolumeName,
		VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver:           Driver,
			ReadOnly:         new(true),
			VolumeAttributes: attrs,
		}},
	}
	if volIdx >= 0 {
		out.Spec.Volumes[volIdx] = volume
	} else {
		out.Spec.Volumes = append(out.Spec.Volumes, volume)
	}

	env := injectedEnv(cfg)
	for _, tg := range targets {
		c := tg.container(out)
		upsertMount(c, corev1.VolumeMount{Name: VolumeName, MountPath: cfg.MountPath, ReadOnly: true})
		for _, e := range env {
			if w := upsertEnv(c, e); w != "" {
				warnings = append(warnings, w)
			}
		}
	}

	if image != "" {
		c := appTarget(out, targets)
		if c.Image != image {
			warnings = append(warnings, fmt.Sprintf("container %s: image %s replaced by the %s demo image %s (%s)",
				c.Name, c.Image, cfg.App, image, annotations.App))
			c.Image = image
		}
	}

	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[annotations.Status] = StatusPrefix + configHash(attrs, out, targets, env, image)

	return Result{Pod: out, Attributes: attrs, Warnings: warnings}, nil
}

// PodIdentity is what the CSI driver will fill its templates with for pod,
// as far as admission knows it (see annotations.Identity). The API server
// sets the default service account before any webhook runs, after taking
// the deprecated spec.serviceAccount as the name when serviceAccountName is
// empty; for pods that never went through it (render, tests) the same is
// done here, with "default" last.
func PodIdentity(pod *corev1.Pod) annotations.Identity {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = pod.Spec.DeprecatedServiceAccount
	}
	if sa == "" {
		sa = "default"
	}
	return annotations.Identity{Name: pod.Name, GenerateName: pod.GenerateName, Namespace: pod.Namespace, ServiceAccount: sa}
}

// withoutOwnID drops the entries after the first (the SPIFFE ID template
// Parse puts there) that expand to the very same ID for this pod, such as
// the ID written out: the certificate carries it once.
func withoutOwnID(uris []string, id annotations.Identity) []string {
	if len(uris) < 2 {
		return uris
	}
	own := id.Expand(uris[0], annotations.Exact)
	out := uris[:1:1]
	for _, u := range uris[1:] {
		if id.Expand(u, annotations.Exact) != own {
			out = append(out, u)
		}
	}
	return out
}

// copyForMutation copies exactly what Mutate may change (the annotations,
// the volume, container and init container lists, each container's env and
// mounts, and those of each native sidecar) and shares the rest with pod. Admission sees every pod create, and a full deep
// copy was a tenth of the handler's time.
func copyForMutation(pod *corev1.Pod) *corev1.Pod {
	out := *pod
	out.Annotations = maps.Clone(pod.Annotations)
	out.Spec.Volumes = slices.Clone(pod.Spec.Volumes)
	out.Spec.Containers = slices.Clone(pod.Spec.Containers)
	for i := range out.Spec.Containers {
		c := &out.Spec.Containers[i]
		c.Env = slices.Clone(c.Env)
		c.VolumeMounts = slices.Clone(c.VolumeMounts)
	}
	if len(pod.Spec.InitContainers) > 0 {
		out.Spec.InitContainers = slices.Clone(pod.Spec.InitContainers)
		for i := range out.Spec.InitContainers {
			if c := &out.Spec.InitContainers[i]; isNativeSidecar(c) {
				c.Env = slices.Clone(c.Env)
				c.VolumeMounts = slices.Clone(c.VolumeMounts)
			}
		}
	}
	return &out
}

// Attributes returns the CSI volume attributes for cfg. derived are the DNS
// names to use when cfg names none.
func Attributes(cfg annotations.Config, derived []string) map[string]string {
	attrs := map[string]string{
		AttrIssuerName:  cfg.Issuer.Name,
		AttrIssuerKind:  cfg.Issuer.Kind,
		AttrIssuerGroup: cfg.Issuer.Group,
		AttrDuration:    cfg.Duration.String(),
		AttrRenewBefore: cfg.RenewBefore.String(),
		AttrKeyAlg:      cfg.KeyAlgorithm,
		AttrKeySize:     strconv.Itoa(cfg.KeySize),
		AttrKeyUsages:   keyUsages(cfg.KeyAlgorithm),
		AttrCertFile:    CertFile,
		AttrKeyFile:     KeyFile,
		AttrCAFile:      CAFile,
	}
	if cfg.CommonName != "" {
		attrs[AttrCommonName] = cfg.CommonName
	}
	dns := cfg.DNSNames
	if dns == nil {
		dns = derived
	}
	if len(dns) > 0 {
		attrs[AttrDNSNames] = strings.Join(dns, ",")
	}
	if len(cfg.URISANs) > 0 {
		attrs[AttrURISANs] = strings.Join(cfg.URISANs, ",")
	}
	return attrs
}

// keyUsages always allows both ends of an mTLS connection. Key encipherment
// only makes sense for RSA key exchange; an ECDSA key cannot encipher.
func keyUsages(alg string) string {
	if alg == annotations.AlgorithmRSA {
		return "digital signature,key encipherment,server auth,client auth"
	}
	return "digital signature,server auth,client auth"
}

// fsGroup decides which group may read the certificate files, which the
// CSI driver writes 0440 owned by root and that group: mtls.demo/fs-group;
// else the pod's securityContext.fsGroup; else the runAsGroup every selected
// container runs as; else the demo image's group when one is swapped in.
// With none of these only root can read tls.key, which is worth a warning
// when a selected container is known to run as another user.
func fsGroup(pod *corev1.Pod, cfg annotations.Config, targets []target, demoImage bool) (*int64, string, field.ErrorList) {
	psc := pod.Spec.SecurityContext
	if cfg.FSGroup != nil {
		return cfg.FSGroup, groupMismatch(pod, psc, targets, *cfg.FSGroup), nil
	}
	if psc != nil && psc.FSGroup != nil && *psc.FSGroup > 0 {
		return psc.FSGroup, "", nil
	}
	var (
		group *int64
		from  *corev1.Container
	)
	for _, tg := range targets {
		c := tg.container(pod)
		g := effectiveRunAsGroup(psc, c)
		if g == nil {
			continue
		}
		if group != nil && *group != *g {
			return nil, "", field.ErrorList{field.Invalid(
				tg.path().Child("securityContext", "runAsGroup"), *g,
				fmt.Sprintf("container %s runs as group %d and container %s as group %d, but the certificate files can belong to one group only; set spec.securityContext.fsGroup (every container gets it) or %s",
					c.Name, *g, from.Name, *group, annotations.FSGroup))}
		}
		group, from = g, c
	}
	switch {
	case group != nil && *group != 0:
		return group, "", nil
	case group == nil && demoImage:
		return new(DemoImageGroup), "", nil
	}
	for _, tg := range targets {
		c := tg.container(pod)
		if runsAsNonRoot(psc, c) {
			return nil, fmt.Sprintf("container %s runs as a non-root user, but no group is set that may read the certificate: only root can read %s; set spec.securityContext.fsGroup or %s",
				c.Name, KeyFile, annotations.FSGroup), nil
		}
	}
	return nil, "", nil
}

// groupMismatch warns when mtls.demo/fs-group names a group that a selected
// container, known to run as non-root, is not in: neither its runAsGroup
// nor the pod's fsGroup or supplementalGroups.
func groupMismatch(pod *corev1.Pod, psc *corev1.PodSecurityContext, targets []target, gid int64) string {
	if psc != nil && ((psc.FSGroup != nil && *psc.FSGroup == gid) || slices.Contains(psc.SupplementalGroups, gid)) {
		return ""
	}
	for _, tg := range targets {
		c := tg.container(pod)
		g := effectiveRunAsGroup(psc, c)
		if g != nil && *g != gid && runsAsNonRoot(psc, c) {
			return fmt.Sprintf("%s is %d, but container %s runs as group %d without it: it cannot read %s; use its group, or add %d to spec.securityContext.supplementalGroups",
				annotations.FSGroup, gid, c.Name, *g, KeyFile, gid)
		}
	}
	return ""
}

// effectiveRunAsGroup is the container's runAsGroup, else the pod's.
func effectiveRunAsGroup(psc *corev1.PodSecurityContext, c *corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsGroup != nil {
		return c.SecurityContext.RunAsGroup
	}
	if psc != nil {
		return psc.RunAsGroup
	}
	return nil
}

// runsAsNonRoot reports whether the pod spec says the container runs as a
// user other than root. (An image's own USER is not visible here.)
func runsAsNonRoot(psc *corev1.PodSecurityContext, c *corev1.Container) bool {
	sc := c.SecurityContext
	switch {
	case sc != nil && sc.RunAsUser != nil:
		return *sc.RunAsUser != 0
	case psc != nil && psc.RunAsUser != nil:
		return *psc.RunAsUser != 0
	case sc != nil && sc.RunAsNonRoot != nil:
		return *sc.RunAsNonRoot
	case psc != nil && psc.RunAsNonRoot != nil:
		return *psc.RunAsNonRoot
	}
	return false
}

// DeriveDNSNames returns the names under which the pod is reachable through
// the Services of its namespace that select it: svc.ns, svc.ns.svc and
// svc.ns.svc.<clusterDomain>, sorted by Service name.
func DeriveDNSNames(pod *corev1.Pod, services []corev1.Service, clusterDomain string) []string {
	podLabels := labels.Set(pod.Labels)
	var matched []string
	for i := range services {
		svc := &services[i]
		if svc.Namespace != pod.Namespace || len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		if labels.SelectorFromValidatedSet(svc.Spec.Selector).Matches(podLabels) {
			matched = append(matched, svc.Name)
		}
	}
	sort.Strings(matched)
	matched = slices.Compact(matched)
	var names []string
	for _, svc := range matched {
		qualified := svc + "." + pod.Namespace
		// Not the bare Service name: it is the same string in every
		// namespace, so it would not bind the certificate to this one.
		names = append(names, qualified, qualified+".svc")
		if clusterDomain != "" {
			names = append(names, qualified+".svc."+clusterDomain)
		}
	}
	return names
}

// target is a container that gets the mount and the env: one of the pod's
// containers, or a native sidecar (an init container with restartPolicy
// Always, which keeps running next to the containers).
type target struct {
	init bool // InitContainers[i], else Containers[i]
	i    int
}

func (tg target) container(pod *corev1.Pod) *corev1.Container {
	if tg.init {
		return &pod.Spec.InitContainers[tg.i]
	}
	return &pod.Spec.Containers[tg.i]
}

func (tg target) path() *field.Path {
	if tg.init {
		return field.NewPath("spec", "initContainers").Index(tg.i)
	}
	return field.NewPath("spec", "containers").Index(tg.i)
}

// isNativeSidecar reports whether an init container is a native sidecar:
// started before the containers and kept running with them.
func isNativeSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// selectContainers returns the containers to inject. Without
// mtls.demo/containers these are the pod's containers except the mesh
// proxies (see meshProxies); with it, exactly the containers it names, which
// may include native sidecars but no init container that runs to completion.
func selectContainers(pod *corev1.Pod, cfg annotations.Config) ([]target, field.ErrorList) {
	if cfg.Containers == nil {
		var targets []target
		for i, c := range pod.Spec.Containers {
			if !IsMeshProxy(c.Name) {
				targets = append(targets, target{i: i})
			}
		}
		if len(targets) == 0 {
			return nil, field.ErrorList{field.Required(annotations.PathFor(annotations.Containers), fmt.Sprintf(
				"the pod's containers (%s) are all service-mesh proxies, which get the certificate only when named; name the containers that need it",
				containerNames(pod.Spec.Containers)))}
		}
		return targets, nil
	}
	var (
		targets []target
		errs    field.ErrorList
	)
	for _, name := range cfg.Containers {
		if i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name }); i >= 0 {
			targets = append(targets, target{i: i})
			continue
		}
		i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == name })
		switch {
		case i >= 0 && isNativeSidecar(&pod.Spec.InitContainers[i]):
			targets = append(targets, target{init: true, i: i})
		case i >= 0:
			errs = append(errs, field.Invalid(annotations.PathFor(annotations.Containers), name,
				"is an init container, which runs once before the containers start and never sees a renewed certificate; "+
					"only containers and native sidecars (init containers with restartPolicy: Always) can be named: "+selectable(pod)))
		default:
			errs = append(errs, field.Invalid(annotations.PathFor(annotations.Containers), name,
				"no container of that name; the pod's containers are: "+selectable(pod)))
		}
	}
	return targets, errs
}

// selectable lists the names mtls.demo/containers accepts: the containers,
// then the native sidecars, marked as such.
func selectable(pod *corev1.Pod) string {
	names := containerNames(pod.Spec.Containers)
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; isNativeSidecar(c) {
			names += ", " + c.Name + " (native sidecar)"
		}
	}
	return names
}

func containerNames(cs []corev1.Container) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// appTarget picks the container whose image becomes the demo image:
// kubectl's default container when it is selected, else the first selected
// container. Native sidecars are never picked; Mutate refuses a selection
// without a container.
func appTarget(pod *corev1.Pod, targets []target) *corev1.Container {
	def := pod.Annotations[DefaultContainerAnnotation]
	var first *corev1.Container
	for _, tg := range targets {
		if tg.init {
			continue
		}
		c := tg.container(pod)
		if def != "" && c.Name == def {
			return c
		}
		if first == nil {
			first = c
		}
	}
	return first
}

func isOurVolume(v corev1.Volume) bool {
	return v.CSI != nil && v.CSI.Driver == Driver
}

// checkMountConflict refuses a mount path that another volume of the
// container already uses: the API server would reject the pod anyway, with a
// message that does not mention the annotation.
func checkMountConflict(c *corev1.Container, mountPath string) field.ErrorList {
	for _, m := range c.VolumeMounts {
		if m.Name != VolumeName && m.MountPath == mountPath {
			return field.ErrorList{field.Invalid(annotations.PathFor(annotations.MountPath), mountPath,
				fmt.Sprintf("container %s already mounts volume %s there; choose another path", c.Name, m.Name))}
		}
	}
	return nil
}

func upsertMount(c *corev1.Container, m corev1.VolumeMount) {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == m.Name {
			c.VolumeMounts[i] = m
			return
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, m)
}

func injectedEnv(cfg annotations.Config) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: EnvUseMTLS, Value: strconv.FormatBool(cfg.UseMTLS)},
		{Name: EnvCertFile, Value: cfg.MountPath + "/" + CertFile},
		{Name: EnvKeyFile, Value: cfg.MountPath + "/" + KeyFile},
		{Name: EnvCAFile, Value: cfg.MountPath + "/" + CAFile},
	}
}

// upsertEnv adds e unless the container already sets the variable; a value
// of the user's own wins, and the returned warning says so.
func upsertEnv(c *corev1.Container, e corev1.EnvVar) string {
	for _, have := range c.Env {
		if have.Name != e.Name {
			continue
		}
		if have.ValueFrom == nil && have.Value == e.Value {
			return ""
		}
		mine := strconv.Quote(have.Value)
		if have.ValueFrom != nil {
			mine = "a valueFrom reference"
		}
		return fmt.Sprintf("container %s: env %s is set by the pod to %s and wins over the injected %q",
			c.Name, e.Name, mine, e.Value)
	}
	c.Env = append(c.Env, e)
	return ""
}

// configHash fingerprints what was injected, so the status annotation shows
// whether two pods got the same certificate setup.
func configHash(attrs map[string]string, pod *corev1.Pod, targets []target, env []corev1.EnvVar, image string) string {
	buf := make([]byte, 0, 1024)
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		buf = append(append(append(append(buf, k...), '='), attrs[k]...), '\n')
	}
	for _, tg := range targets {
		kind := "container="
		if tg.init {
			kind = "initContainer="
		}
		buf = append(append(append(buf, kind...), tg.container(pod).Name...), '\n')
	}
	for _, e := range env {
		buf = append(append(append(append(append(buf, "env="...), e.Name...), '='), e.Value...), '\n')
	}
	buf = append(append(append(buf, "image="...), image...), '\n')
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:5])
}
