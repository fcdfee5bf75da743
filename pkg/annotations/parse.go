package annotations

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MinDuration is the shortest certificate lifetime any flag may allow.
// Anything shorter would keep the issuer busy re-signing and gives no time
// to roll out.
const MinDuration = time.Minute

// maxListErrors is how many bad entries of one list are reported one by one;
// the rest are summed up in one more error, so that a long annotation cannot
// make the answer long too.
const maxListErrors = 8

// templatePlaceholders lists the templates the CSI driver expands in common-name,
// dns-names and uri-sans when it mounts the volume. Anything else written as
// ${X} or $X makes the mount fail, so Parse refuses it up front.
var templatePlaceholders = map[string]string{
	"POD_NAME":             "pod-name",
	"POD_NAMESPACE":        "pod-namespace",
	"POD_UID":              "00000000-0000-0000-0000-000000000000",
	"SERVICE_ACCOUNT_NAME": "service-account",
}

// systemDirs are directories a certificate mount must never hide: mounting
// over them breaks the container in ways far from the annotation's cause.
// A subdirectory such as /etc/tls is fine: it hides nothing.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr", "/var/run/secrets/kubernetes.io"}

// pseudoFS are the kernel file systems the runtime mounts; nothing may be
// mounted inside them.
var pseudoFS = []string{"/dev", "/proc", "/sys"}

var kindPattern = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// annotationsPath is where every error of this package points.
var annotationsPath = field.NewPath("metadata", "annotations")

// PathFor returns the field path of one annotation, as the API server prints
// it: metadata.annotations[mtls.demo/issuer].
func PathFor(key string) *field.Path { return annotationsPath.Key(key) }

// OptedIn reports whether the annotations ask for injection at all. A value
// other than "true" or "false" counts as opted in, so that Parse gets to
// refuse it instead of the pod silently staying in plain text.
func OptedIn(ann map[string]string) bool {
	v, ok := ann[Enable]
	return ok && v != "false"
}

// Parse validates a pod's annotations and returns its effective Config.
// Problems are returned all at once, each on the annotation that caused it;
// warnings describe keys that are ignored. When the pod has not opted in,
// Config.Enabled is false and nothing else is checked. When there are
// errors, the Config is the zero value (see ParsePartial).
func Parse(ann map[string]string, d Defaults) (Config, []string, field.ErrorList) {
	cfg, warnings, errs := ParsePartial(ann, d)
	if len(errs) > 0 {
		return Config{}, warnings, errs
	}
	return cfg, warnings, nil
}

// ParsePartial is Parse, except that the Config is returned alongside the
// errors: every field whose annotation is valid holds its value, every
// field whose annotation is in error holds what the pod would get without
// that annotation, and Containers keeps the names that are valid (an empty,
// non-nil list when none is). It is not a configuration to inject with;
// it lets the checks that need the pod itself (do the named containers
// exist, does the mount path collide) run on a refused pod too, so that
// the user hears of every problem at once.
func ParsePartial(ann map[string]string, d Defaults) (Config, []string, field.ErrorList) {
	var errs field.ErrorList
	if !OptedIn(ann) {
		return Config{}, nil, nil
	}
	if v := ann[Enable]; v != "true" {
		errs = append(errs, field.NotSupported(PathFor(Enable), v, []string{"true", "false"}))
	}

	// The API server refuses annotations over 256 KiB in all, but only
	// after mutating admission: refuse them here first, before any work
	// that grows with their number or size.
	if e := checkTotalSize(ann); e != nil {
		return Config{}, nil, field.ErrorList{e}
	}

	cfg := Config{Enabled: true, UseMTLS: true, MountPath: DefaultMountPath}
	warnings := unknownKeys(ann)
	lim := d.Limits.WithDefaults()

	// Refuse overlong values before reading them: nothing below may spend
	// time on them. The pod is refused anyway, so they are dropped from
	// the view the other checks see. Only the known keys are read at all.
	if el := checkLengths(ann, lim.MaxValueBytes); len(el) > 0 {
		errs = append(errs, el...)
		trimmed := make(map[string]string, len(known))
		for _, k := range known {
			if v, ok := ann[k]; ok && len(v) <= lim.MaxValueBytes {
				trimmed[k] = v
			}
		}
		ann = trimmed
	}

	cfg.Issuer, errs = parseIssuer(ann, d, errs)

	if v, ok := ann[CommonName]; ok {
		el := checkCommonName(v)
		if len(el) == 0 {
			cfg.CommonName = v
		}
		errs = append(errs, el...)
	}
	if v, ok := ann[DNSNames]; ok {
		var el field.ErrorList
		cfg.DNSNames, el = parseDNSNames(v, lim.MaxDNSNames)
		errs = append(errs, el...)
	}
	spiffe := SPIFFEID(d.TrustDomain)
	cfg.URISANs = []string{spiffe}
	if v, ok := ann[URISANs]; ok {
		extra, el := parseURIs(v, spiffe, lim.MaxURISANs)
		cfg.URISANs = append(cfg.URISANs, extra...)
		errs = append(errs, el...)
	}

	var el field.ErrorList
	cfg.Duration, cfg.RenewBefore, el = parseLifetime(ann, d, lim)
	errs = append(errs, el...)
	cfg.KeyAlgorithm, cfg.KeySize, el = parseKey(ann, lim.MaxRSAKeySize)
	errs = append(errs, el...)

	if v, ok := ann[Containers]; ok {
		cfg.Containers, el = parseContainers(v)
		if cfg.Containers == nil {
			// None is valid: select none, rather than every container.
			cfg.Containers = []string{}
		}
		errs = append(errs, el...)
	}
	if v, ok := ann[MountPath]; ok {
		el := checkMountPath(v)
		if len(el) == 0 {
			cfg.MountPath = v
		}
		errs = append(errs, el...)
	}
	if v, ok := ann[FSGroup]; ok {
		gid, err := strconv.ParseInt(v, 10, 64)
		if err != nil || gid < 1 || gid > MaxFSGroup {
			errs = append(errs, field.Invalid(PathFor(FSGroup), v,
				"must be a group ID from 1 to 4294967295: the CSI driver makes the certificate files readable by this group"))
		} else {
			cfg.FSGroup = &gid
		}
	}
	if v, ok := ann[UseMTLS]; ok {
		switch v {
		case "true":
		case "false":
			cfg.UseMTLS = false
		default:
			errs = append(errs, field.NotSupported(PathFor(UseMTLS), v, []string{"true", "false"}))
		}
	}
	if v, ok := ann[App]; ok {
		if v != AppFrontend && v != AppBackend {
			errs = append(errs, field.NotSupported(PathFor(App), v, []string{AppFrontend, AppBackend}))
		} else {
			cfg.App = v
		}
	}
	return cfg, warnings, errs
}

func parseIssuer(ann map[string]string, d Defaults, errs field.ErrorList) (IssuerRef, field.ErrorList) {
	ref := d.Issuer
	if ref.Kind == "" {
		ref.Kind = KindIssuer
	}
	if ref.Group == "" {
		ref.Group = CertManagerGroup
	}
	if v, ok := ann[Issuer]; ok {
		ref.Name = v
	}
	if v, ok := ann[IssuerKind]; ok {
		ref.Kind = v
	}
	if v, ok := ann[IssuerGroup]; ok {
		ref.Group = v
	}

	switch _, set := ann[Issuer]; {
	case ref.Name == "" && !set:
		errs = append(errs, field.Required(PathFor(Issuer),
			"name the cert-manager issuer that signs this pod's certificate, or start the webhook with --default-issuer"))
	default:
		for _, msg := range validation.IsDNS1123Subdomain(ref.Name) {
			errs = append(errs, field.Invalid(PathFor(Issuer), ref.Name, "must be a valid issuer name: "+msg))
		}
	}

	groupOK := true
	for _, msg := range validation.IsDNS1123Subdomain(ref.Group) {
		groupOK = false
		errs = append(errs, field.Invalid(PathFor(IssuerGroup), ref.Group, "must be an API group such as cert-manager.io: "+msg))
	}
	switch {
	case ref.Group == CertManagerGroup:
		if ref.Kind != KindIssuer && ref.Kind != KindClusterIssuer {
			errs = append(errs, field.NotSupported(PathFor(IssuerKind), ref.Kind, []string{KindIssuer, KindClusterIssuer}))
		}
	case groupOK && !kindPattern.MatchString(ref.Kind):
		errs = append(errs, field.Invalid(PathFor(IssuerKind), ref.Kind,
			"must be the Kind of an external issuer, such as AWSPCAIssuer (a capital letter, then letters and digits)"))
	}
	return ref, errs
}

// MaxTotalAnnotationBytes is the API server's limit on the size of an
// object's annotations, keys and values together: apimachinery's
// TotalAnnotationSizeLimitB, summed as its ValidateAnnotationsSize sums
// (a test pins both). Not imported: that package would triple what this
// one pulls in, for a constant and a sum.
const MaxTotalAnnotationBytes = 256 << 10

// checkTotalSize refuses annotations the API server would refuse for their
// size, naming how large they are.
func checkTotalSize(ann map[string]string) *field.Error {
	total := 0
	for k, v := range ann {
		total += len(k) + len(v)
	}
	if total <= MaxTotalAnnotationBytes {
		return nil
	}
	return field.Invalid(annotationsPath, fmt.Sprintf("(%d annotations, %d bytes)", len(ann), total), fmt.Sprintf(
		"the annotations of one object may have at most %d bytes, keys and values together (the API server's limit); none of them is read past it", MaxTotalAnnotationBytes))
}

// checkLengths refuses every known mtls.demo/ value longer than limit
// bytes; unknown keys are never read, so their values may be any length.
func checkLengths(ann map[string]string, limit int) field.ErrorList {
	var errs field.ErrorList
	for _, k := range known {
		if v, ok := ann[k]; ok && len(v) > limit {
			errs = append(errs, field.Invalid(PathFor(k), Quote(v),
				fmt.Sprintf("is %d bytes long; an annotation value of this webhook may have at most %d (--max-annotation-bytes)", len(v), limit)))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

func checkCommonName(v string) field.ErrorList {
	p := PathFor(CommonName)
	if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
		return field.ErrorList{field.Invalid(p, v, fmt.Sprintf("contains the control character %U at byte %d; a common name is printable text", []rune(v[i:])[0], i))}
	}
	expanded, el := expandTemplates(p, v)
	if el != nil {
		return el
	}
	switch {
	case strings.TrimSpace(v) == "":
		return field.ErrorList{field.Invalid(p, v, "must not be empty; remove the annotation to have no common name")}
	case len(expanded) > 64:
		return field.ErrorList{field.TooLong(p, v, 64)}
	}
	return nil
}

func parseDNSNames(v string, limit int) ([]string, field.ErrorList) {
	p := PathFor(DNSNames)
	return parseTemplatedList(p, v, "DNS names", limit, "a certificate may carry at most %d (--max-dns-names)", nil, func(name, expanded string) field.ErrorList {
		var errs field.ErrorList
		for _, msg := range validation.IsDNS1123Subdomain(strings.TrimPrefix(expanded, "*.")) {
			errs = append(errs, field.Invalid(p, name, "not a valid DNS name: "+msg))
		}
		return errs
	})
}

// parseURIs reads the URIs a pod adds to its SPIFFE ID. Listing the SPIFFE
// ID template itself adds nothing; limit counts the SPIFFE ID too.
func parseURIs(v, spiffe string, limit int) ([]string, field.ErrorList) {
	p := PathFor(URISANs)
	return parseTemplatedList(p, v, "URIs", limit-1, "besides its SPIFFE ID a certificate may carry at most %d (--max-uri-sans counts the SPIFFE ID too)", map[string]bool{spiffe: true}, func(raw, expanded string) field.ErrorList {
		if strings.IndexFunc(raw, unicode.IsControl) >= 0 || strings.ContainsAny(raw, " ") {
			return field.ErrorList{field.Invalid(p, raw, "must not contain spaces or control characters")}
		}
		u, err := url.ParseRequestURI(expanded)
		if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
			return field.ErrorList{field.Invalid(p, raw, "must be an absolute URI with a scheme and a host, such as spiffe://cluster.local/ns/demo/sa/frontend")}
		}
		return nil
	})
}

// parseTemplatedList splits a comma list whose entries may hold the
// driver's templates, checks each entry once its templates are expanded to
// placeholders, and keeps the first of any duplicates; entries in skip are
// dropped. It is linear in the length of v: duplicates are found through a
// map, and more than limit distinct entries, or more than maxListErrors bad
// ones, end the work early. overLimit says, with a %d for limit, how many
// entries are allowed and which flag sets it.
func parseTemplatedList(p *field.Path, v, what string, limit int, overLimit string, skip map[string]bool, check func(raw, expanded string) field.ErrorList) ([]string, field.ErrorList) {
	var (
		out  []string
		errs field.ErrorList
		bad  int
	)
	entries := splitList(v)
	seen := make(map[string]struct{}, min(len(entries), limit+1))
	for _, raw := range entries {
		if raw == "" {
			bad++
			if bad <= maxListErrors {
				errs = append(errs, field.Invalid(p, v, "must be a comma-separated list of "+what+" without empty entries"))
			}
			continue
		}
		if _, dup := seen[raw]; dup || skip[raw] {
			continue
		}
		seen[raw] = struct{}{}
		if len(seen) > limit {
			n := countDistinct(entries, skip)
			return nil, append(errs, field.Invalid(p, fmt.Sprintf("(%d %s)", n, what),
				fmt.Sprintf("lists %d distinct %s; ", n, what)+fmt.Sprintf(overLimit, limit)))
		}
		expanded, el := expandTemplates(p, raw)
		if el == nil {
			el = check(raw, expanded)
		}
		if el != nil {
			bad++
			if bad <= maxListErrors {
				errs = append(errs, el...)
			}
			continue
		}
		out = append(out, raw)
	}
	if bad > maxListErrors {
		errs = append(errs, field.Invalid(p, fmt.Sprintf("(%d entries)", len(entries)),
			fmt.Sprintf("and %d more bad %s not listed", bad-maxListErrors, what)))
	}
	return out, errs
}

// countDistinct counts the distinct non-empty entries not in skip.
func countDistinct(entries []string, skip map[string]bool) int {
	seen := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		if e != "" && !skip[e] {
			seen[e] = struct{}{}
		}
	}
	return len(seen)
}

func parseLifetime(ann map[string]string, d Defaults, lim Limits) (time.Duration, time.Duration, field.ErrorList) {
	var errs field.ErrorList
	dur, renew := d.Duration, d.RenewBefore
	durSet, renewSet := false, false
	if v, ok := ann[Duration]; ok {
		durSet = true
		parsed, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(PathFor(Duration), v, "must be a Go duration such as 24h or 90m"))
		case parsed < lim.MinDuration || parsed > lim.MaxDuration:
			errs = append(errs, field.Invalid(PathFor(Duration), v,
				fmt.Sprintf("must be from %s to %s (--min-duration, --max-duration)", lim.MinDuration, lim.MaxDuration)))
		default:
			dur = parsed
		}
	}
	if v, ok := ann[RenewBefore]; ok {
		renewSet = true
		parsed, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(PathFor(RenewBefore), v, "must be a Go duration such as 8h or 30m"))
		case parsed <= 0:
			errs = append(errs, field.Invalid(PathFor(RenewBefore), v, "must be positive"))
		default:
			renew = parsed
		}
	}
	if len(errs) > 0 {
		return 0, 0, errs
	}
	if renew >= dur || dur-renew < lim.MinRenewInterval {
		if !renewSet {
			// The webhook-wide default does not fit a short duration the user
			// chose: renew after two thirds of the lifetime instead of failing
			// on a value the user never wrote.
			renew = dur / 3
		}
	}
	src := "the webhook's --default-duration"
	if durSet {
		src = Duration
	}
	switch {
	case renew >= dur:
		errs = append(errs, field.Invalid(PathFor(RenewBefore), ann[RenewBefore],
			fmt.Sprintf("must be shorter than the certificate duration (%s from %s)", dur, src)))
	case dur-renew < lim.MinRenewInterval:
		p, v := PathFor(RenewBefore), ann[RenewBefore]
		if !renewSet {
			p, v = PathFor(Duration), ann[Duration]
		}
		errs = append(errs, field.Invalid(p, v, fmt.Sprintf(
			"leaves %s between renewals (duration %s minus renew-before %s); a certificate must stay in use at least %s between renewals (--min-renew-interval), because every renewal is a new key and certificate request for every replica",
			dur-renew, dur, renew, lim.MinRenewInterval)))
	}
	return dur, renew, errs
}

func parseKey(ann map[string]string, maxRSA int) (string, int, field.ErrorList) {
	alg := AlgorithmECDSA
	if v, ok := ann[KeyAlgorithm]; ok {
		switch {
		case strings.EqualFold(v, AlgorithmECDSA):
			alg = AlgorithmECDSA
		case strings.EqualFold(v, AlgorithmRSA):
			alg = AlgorithmRSA
		default:
			return "", 0, field.ErrorList{field.NotSupported(PathFor(KeyAlgorithm), v, []string{AlgorithmECDSA, AlgorithmRSA})}
		}
	}
	size := 256
	if alg == AlgorithmRSA {
		size = RSAMinKeySize
	}
	v, ok := ann[KeySize]
	if !ok {
		return alg, size, nil
	}
	p := PathFor(KeySize)
	n, err := strconv.Atoi(v)
	if err != nil {
		return "", 0, field.ErrorList{field.Invalid(p, v, "must be a whole number of bits")}
	}
	switch alg {
	case AlgorithmECDSA:
		if n != 256 && n != 384 && n != 521 {
			msg := "ECDSA keys must be 256, 384 or 521 bits"
			if n >= RSAMinKeySize {
				msg += "; for an RSA key also set " + KeyAlgorithm + ": RSA"
			}
			return "", 0, field.ErrorList{field.Invalid(p, v, msg)}
		}
	case AlgorithmRSA:
		if n < RSAMinKeySize || n > maxRSA {
			return "", 0, field.ErrorList{field.Invalid(p, v, fmt.Sprintf("RSA keys must be %d to %d bits (--max-rsa-key-size)", RSAMinKeySize, maxRSA))}
		}
	}
	return alg, n, nil
}

func parseContainers(v string) ([]string, field.ErrorList) {
	p := PathFor(Containers)
	var (
		names []string
		errs  field.ErrorList
		bad   int
	)
	seen := map[string]bool{}
	entries := splitList(v)
	for _, name := range entries {
		var el field.ErrorList
		if name == "" {
			el = field.ErrorList{field.Invalid(p, v, "must be a comma-separated list of container names without empty entries")}
		}
		for _, msg := range validation.IsDNS1123Label(name) {
			if name != "" {
				el = append(el, field.Invalid(p, name, "not a valid container name: "+msg))
			}
		}
		if len(el) > 0 {
			bad++
			if bad <= maxListErrors {
				errs = append(errs, el...)
			}
			continue
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	if bad > maxListErrors {
		errs = append(errs, field.Invalid(p, fmt.Sprintf("(%d entries)", len(entries)),
			fmt.Sprintf("and %d more bad container names not listed", bad-maxListErrors)))
	}
	return names, errs
}

func checkMountPath(v string) field.ErrorList {
	p := PathFor(MountPath)
	switch {
	case !path.IsAbs(v):
		return field.ErrorList{field.Invalid(p, v, "must be an absolute path such as "+DefaultMountPath)}
	case v == "/":
		return field.ErrorList{field.Invalid(p, v, "must not be the root directory; use a directory of its own such as "+DefaultMountPath)}
	case path.Clean(v) != v:
		return field.ErrorList{field.Invalid(p, v, "must be a clean path without '..', '//' or a trailing '/' (did you mean "+strconv.Quote(path.Clean(v))+"?)")}
	case strings.ContainsAny(v, ":,"):
		return field.ErrorList{field.Invalid(p, v, "must not contain ':' or ','")}
	}
	for _, dir := range systemDirs {
		if v == dir || strings.HasPrefix(dir, v+"/") {
			return field.ErrorList{field.Invalid(p, v, "must not hide the system directory "+dir+"; use a directory of its own such as "+DefaultMountPath)}
		}
	}
	for _, dir := range pseudoFS {
		if strings.HasPrefix(v, dir+"/") {
			return field.ErrorList{field.Invalid(p, v, "must not be inside "+dir+", which the container runtime owns; use a directory such as "+DefaultMountPath)}
		}
	}
	return nil
}

// expandTemplates replaces the driver's template variables with placeholders
// so the result can be checked like a literal value; unknown variables are
// errors, exactly as they would be when the driver mounts the volume.
func expandTemplates(p *field.Path, v string) (string, field.ErrorList) {
	if !closedTemplates(v) {
		return "", field.ErrorList{field.Invalid(p, v, "has a ${ without its closing }; templates are written ${POD_NAME}")}
	}
	var unknown []string
	out := os.Expand(v, func(name string) string {
		if ph, ok := templatePlaceholders[name]; ok {
			return ph
		}
		unknown = append(unknown, name)
		return ""
	})
	if len(unknown) == 0 {
		return out, nil
	}
	known := make([]string, 0, len(templatePlaceholders))
	for k := range templatePlaceholders {
		known = append(known, k)
	}
	sort.Strings(known)
	for i, k := range known {
		known[i] = "${" + k + "}"
	}
	return "", field.ErrorList{field.Invalid(p, v, fmt.Sprintf("unknown template variable %q; the CSI driver only expands %s",
		unknown[0], strings.Join(known, ", ")))}
}

// closedTemplates reports whether every ${ in v has a } after it. os.Expand
// scans to the end of the value for each unclosed ${, which is quadratic;
// once every ${ is known to be closed, it reads each byte once.
func closedTemplates(v string) bool {
	for {
		i := strings.Index(v, "${")
		if i < 0 {
			return true
		}
		j := strings.IndexByte(v[i+2:], '}')
		if j < 0 {
			return false
		}
		v = v[i+2+j+1:]
	}
}

func splitList(v string) []string {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
