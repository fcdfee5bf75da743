package annotations

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func testDefaults() Defaults {
	d := NewDefaults()
	d.Issuer.Name = "default-ca"
	return d
}

// base is the smallest opted-in annotation set.
func base(extra ...string) map[string]string {
	m := map[string]string{Enable: "true"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// sixtyFourNames are --max-dns-names valid names that, joined with commas,
// are exactly --max-annotation-bytes long.
func sixtyFourNames() []string {
	names := make([]string, 64)
	for i := range names {
		names[i] = fmt.Sprintf("%02d", i) + strings.Repeat("a", 61)
	}
	names[63] = "63." + strings.Repeat("a", 61)
	return names
}

func defaultConfig() Config {
	return Config{
		Enabled:      true,
		Issuer:       IssuerRef{Name: "default-ca", Kind: KindIssuer, Group: CertManagerGroup},
		URISANs:      []string{"spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}"},
		Duration:     24 * time.Hour,
		RenewBefore:  8 * time.Hour,
		KeyAlgorithm: AlgorithmECDSA,
		KeySize:      256,
		MountPath:    DefaultMountPath,
		UseMTLS:      true,
	}
}

func TestParseAccepts(t *testing.T) {
	tests := map[string]struct {
		ann  map[string]string
		want func(*Config)
	}{
		"a pod without the enable key is left alone": {
			ann:  map[string]string{"app": "x", Issuer: "ignored"},
			want: func(c *Config) { *c = Config{} },
		},
		"enable false is a clean opt-out, whatever else is set": {
			ann:  map[string]string{Enable: "false", KeySize: "nonsense"},
			want: func(c *Config) { *c = Config{} },
		},
		"enable true alone gives ECDSA P-256, the SPIFFE ID and the webhook defaults": {
			ann: base(),
		},
		"every key set to a valid value is carried into the config": {
			ann: base(Issuer, "team-ca", IssuerKind, "ClusterIssuer", CommonName, "${POD_NAME}",
				DNSNames, "api, api.shop.svc ,*.api.shop", URISANs, "spiffe://corp/ns/shop/sa/api,https://api.example",
				Duration, "48h", RenewBefore, "12h", KeyAlgorithm, "rsa", KeySize, "3072", Containers, "app,proxy",
				MountPath, "/etc/tls", UseMTLS, "false", App, "backend"),
			want: func(c *Config) {
				c.Issuer = IssuerRef{Name: "team-ca", Kind: KindClusterIssuer, Group: CertManagerGroup}
				c.CommonName = "${POD_NAME}"
				c.DNSNames = []string{"api", "api.shop.svc", "*.api.shop"}
				c.URISANs = []string{"spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}", "spiffe://corp/ns/shop/sa/api", "https://api.example"}
				c.Duration, c.RenewBefore = 48*time.Hour, 12*time.Hour
				c.KeyAlgorithm, c.KeySize = AlgorithmRSA, 3072
				c.Containers = []string{"app", "proxy"}
				c.MountPath, c.UseMTLS, c.App = "/etc/tls", false, AppBackend
			},
		},
		"RSA without a size gets 2048 bits": {
			ann:  base(KeyAlgorithm, "RSA"),
			want: func(c *Config) { c.KeyAlgorithm, c.KeySize = AlgorithmRSA, 2048 },
		},
		"a short duration without renew-before renews after two thirds instead of failing on the default": {
			ann:  base(Duration, "1h"),
			want: func(c *Config) { c.Duration, c.RenewBefore = time.Hour, 20*time.Minute },
		},
		"an external issuer group takes any well-formed kind": {
			ann: base(IssuerGroup, "awspca.cert-manager.io", IssuerKind, "AWSPCAClusterIssuer", Issuer, "pca"),
			want: func(c *Config) {
				c.Issuer = IssuerRef{Name: "pca", Kind: "AWSPCAClusterIssuer", Group: "awspca.cert-manager.io"}
			},
		},
		"the SPIFFE ID template in uri-sans adds nothing: it is always first": {
			ann: base(URISANs, "spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME},urn:shop:api"),
			want: func(c *Config) {
				c.URISANs = []string{"spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}", "urn:shop:api"}
			},
		},
		"a duration up to --max-duration is accepted": {
			ann:  base(Duration, "2160h"),
			want: func(c *Config) { c.Duration = 2160 * time.Hour },
		},
		"a value of exactly --max-annotation-bytes with --max-dns-names names is read": {
			ann: base(DNSNames, strings.Join(sixtyFourNames(), ",")),
			want: func(c *Config) {
				c.DNSNames = sixtyFourNames()
			},
		},
		"duplicate list entries are kept once": {
			ann:  base(Containers, "app,app", DNSNames, "a,a"),
			want: func(c *Config) { c.Containers = []string{"app"}; c.DNSNames = []string{"a"} },
		},
		"a subdirectory of /etc hides nothing and is allowed": {
			ann:  base(MountPath, "/etc/tls/certs"),
			want: func(c *Config) { c.MountPath = "/etc/tls/certs" },
		},
		"a group ID lets that group read the certificate files": {
			ann:  base(FSGroup, "65532"),
			want: func(c *Config) { c.FSGroup = new(int64(65532)) },
		},
		"the largest group ID the driver accepts": {
			ann:  base(FSGroup, "4294967295"),
			want: func(c *Config) { c.FSGroup = new(int64(MaxFSGroup)) },
		},
		"the webhook's own status annotation is not reported as unknown": {
			ann: base(Status, "injected-0123456789"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := testDefaults()
			want := defaultConfig()
			if tc.want != nil {
				tc.want(&want)
			}
			got, warnings, errs := Parse(tc.ann, d)
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			if len(warnings) > 0 {
				t.Errorf("unexpected warnings: %v", warnings)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	p := PathFor
	tests := map[string]struct {
		ann      map[string]string
		defaults func(*Defaults)
		want     field.ErrorList
	}{
		"enable yes is not a boolean the webhook accepts": {
			ann:  base(Enable, "yes"),
			want: field.ErrorList{field.NotSupported(p(Enable), "yes", []string{"true", "false"})},
		},
		"duration forever is not a Go duration": {
			ann:  base(Duration, "forever"),
			want: field.ErrorList{field.Invalid(p(Duration), "forever", "must be a Go duration such as 24h or 90m")},
		},
		"a duration under a minute would keep the issuer re-signing": {
			ann:  base(Duration, "30s"),
			want: field.ErrorList{field.Invalid(p(Duration), "30s", "must be from 1m0s to 2160h0m0s (--min-duration, --max-duration)")},
		},
		"a 100-year certificate is past --max-duration": {
			ann:  base(Duration, "876000h"),
			want: field.ErrorList{field.Invalid(p(Duration), "876000h", "must be from 1m0s to 2160h0m0s (--min-duration, --max-duration)")},
		},
		"the duration bounds follow the flags": {
			ann:      base(Duration, "30m"),
			defaults: func(d *Defaults) { d.Limits.MinDuration = time.Hour },
			want:     field.ErrorList{field.Invalid(p(Duration), "30m", "must be from 1h0m0s to 2160h0m0s (--min-duration, --max-duration)")},
		},
		"RSA 8192 is past the default --max-rsa-key-size": {
			ann:  base(KeyAlgorithm, "RSA", KeySize, "8192"),
			want: field.ErrorList{field.Invalid(p(KeySize), "8192", "RSA keys must be 2048 to 4096 bits (--max-rsa-key-size)")},
		},
		"a value over --max-annotation-bytes is refused unread": {
			ann: base(DNSNames, strings.Repeat("a,", 2049)),
			want: field.ErrorList{field.Invalid(p(DNSNames), Quote(strings.Repeat("a,", 2049)),
				"is 4098 bytes long; an annotation value of this webhook may have at most 4096 (--max-annotation-bytes)")},
		},
		"more DNS names than --max-dns-names": {
			ann:      base(DNSNames, "a,b,c,a"),
			defaults: func(d *Defaults) { d.Limits.MaxDNSNames = 2 },
			want:     field.ErrorList{field.Invalid(p(DNSNames), "(3 DNS names)", "lists 3 distinct DNS names; a certificate may carry at most 2 (--max-dns-names)")},
		},
		"more URIs than --max-uri-sans, the SPIFFE ID counted": {
			ann:      base(URISANs, "urn:a,urn:b"),
			defaults: func(d *Defaults) { d.Limits.MaxURISANs = 2 },
			want:     field.ErrorList{field.Invalid(p(URISANs), "(2 URIs)", "lists 2 distinct URIs; besides its SPIFFE ID a certificate may carry at most 1 (--max-uri-sans counts the SPIFFE ID too)")},
		},
		"a newline in the common name": {
			ann:  base(CommonName, "admin\nroot"),
			want: field.ErrorList{field.Invalid(p(CommonName), "admin\nroot", "contains the control character U+000A at byte 5; a common name is printable text")},
		},
		"a NUL in the common name": {
			ann:  base(CommonName, "admin\x00"),
			want: field.ErrorList{field.Invalid(p(CommonName), "admin\x00", "contains the control character U+0000 at byte 5; a common name is printable text")},
		},
		"a space in a URI": {
			ann:  base(URISANs, "urn:a b"),
			want: field.ErrorList{field.Invalid(p(URISANs), "urn:a b", "must not contain spaces or control characters")},
		},
		"many bad entries are reported eight at a time": {
			ann: base(Containers, "x", DNSNames, func() string {
				var b strings.Builder
				for i := range 20 {
					fmt.Fprintf(&b, "Bad_%d,", i)
				}
				return b.String() + "ok"
			}()),
			want: func() field.ErrorList {
				var el field.ErrorList
				for i := range 8 {
					el = append(el, field.Invalid(p(DNSNames), fmt.Sprintf("Bad_%d", i),
						"not a valid DNS name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
				}
				return append(el, field.Invalid(p(DNSNames), "(21 entries)", "and 12 more bad DNS names not listed"))
			}(),
		},
		"renew-before equal to the duration would renew forever": {
			ann:  base(Duration, "1h", RenewBefore, "1h"),
			want: field.ErrorList{field.Invalid(p(RenewBefore), "1h", "must be shorter than the certificate duration (1h0m0s from mtls.demo/duration)")},
		},
		"renew-before longer than the default duration names the flag": {
			ann:  base(RenewBefore, "48h"),
			want: field.ErrorList{field.Invalid(p(RenewBefore), "48h", "must be shorter than the certificate duration (24h0m0s from the webhook's --default-duration)")},
		},
		"negative renew-before": {
			ann:  base(RenewBefore, "-1h"),
			want: field.ErrorList{field.Invalid(p(RenewBefore), "-1h", "must be positive")},
		},
		"RSA 1024 is too weak": {
			ann:  base(KeyAlgorithm, "RSA", KeySize, "1024"),
			want: field.ErrorList{field.Invalid(p(KeySize), "1024", "RSA keys must be 2048 to 4096 bits (--max-rsa-key-size)")},
		},
		"DSA is not an algorithm cert-manager issues": {
			ann:  base(KeyAlgorithm, "DSA"),
			want: field.ErrorList{field.NotSupported(p(KeyAlgorithm), "DSA", []string{"ECDSA", "RSA"})},
		},
		"an RSA size without the algorithm points at the missing key": {
			ann:  base(KeySize, "2048"),
			want: field.ErrorList{field.Invalid(p(KeySize), "2048", "ECDSA keys must be 256, 384 or 521 bits; for an RSA key also set mtls.demo/key-algorithm: RSA")},
		},
		"a key size that is not a number": {
			ann:  base(KeySize, "big"),
			want: field.ErrorList{field.Invalid(p(KeySize), "big", "must be a whole number of bits")},
		},
		"a relative mount path": {
			ann:  base(MountPath, "certs"),
			want: field.ErrorList{field.Invalid(p(MountPath), "certs", "must be an absolute path such as /var/run/mtls")},
		},
		"the root directory as mount path": {
			ann:  base(MountPath, "/"),
			want: field.ErrorList{field.Invalid(p(MountPath), "/", "must not be the root directory; use a directory of its own such as /var/run/mtls")},
		},
		"a mount path that hides /etc": {
			ann:  base(MountPath, "/etc"),
			want: field.ErrorList{field.Invalid(p(MountPath), "/etc", "must not hide the system directory /etc; use a directory of its own such as /var/run/mtls")},
		},
		"a mount path that hides the service account token": {
			ann:  base(MountPath, "/var/run"),
			want: field.ErrorList{field.Invalid(p(MountPath), "/var/run", "must not hide the system directory /var/run/secrets/kubernetes.io; use a directory of its own such as /var/run/mtls")},
		},
		"a mount path inside /proc": {
			ann:  base(MountPath, "/proc/certs"),
			want: field.ErrorList{field.Invalid(p(MountPath), "/proc/certs", "must not be inside /proc, which the container runtime owns; use a directory such as /var/run/mtls")},
		},
		"an unclean mount path suggests the clean one": {
			ann:  base(MountPath, "/certs/../tls/"),
			want: field.ErrorList{field.Invalid(p(MountPath), "/certs/../tls/", `must be a clean path without '..', '//' or a trailing '/' (did you mean "/tls"?)`)},
		},
		"an underscore makes a DNS name invalid": {
			ann: base(DNSNames, "good.example,Bad_Name"),
			want: field.ErrorList{field.Invalid(p(DNSNames), "Bad_Name",
				"not a valid DNS name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")},
		},
		"an empty entry in dns-names": {
			ann:  base(DNSNames, "a,,b"),
			want: field.ErrorList{field.Invalid(p(DNSNames), "a,,b", "must be a comma-separated list of DNS names without empty entries")},
		},
		"a template the driver does not know": {
			ann:  base(DNSNames, "${POD_IP}.svc"),
			want: field.ErrorList{field.Invalid(p(DNSNames), "${POD_IP}.svc", `unknown template variable "POD_IP"; the CSI driver only expands ${POD_NAME}, ${POD_NAMESPACE}, ${POD_UID}, ${SERVICE_ACCOUNT_NAME}`)},
		},
		"a URI SAN that is not a URI": {
			ann:  base(URISANs, "::"),
			want: field.ErrorList{field.Invalid(p(URISANs), "::", "must be an absolute URI with a scheme and a host, such as spiffe://cluster.local/ns/demo/sa/frontend")},
		},
		"a URI SAN without a scheme": {
			ann:  base(URISANs, "/ns/demo"),
			want: field.ErrorList{field.Invalid(p(URISANs), "/ns/demo", "must be an absolute URI with a scheme and a host, such as spiffe://cluster.local/ns/demo/sa/frontend")},
		},
		"issuer-kind Foo is not a cert-manager kind": {
			ann:  base(IssuerKind, "Foo"),
			want: field.ErrorList{field.NotSupported(p(IssuerKind), "Foo", []string{"Issuer", "ClusterIssuer"})},
		},
		"an external issuer kind must look like a Kind": {
			ann:  base(IssuerGroup, "example.com", IssuerKind, "my-issuer"),
			want: field.ErrorList{field.Invalid(p(IssuerKind), "my-issuer", "must be the Kind of an external issuer, such as AWSPCAIssuer (a capital letter, then letters and digits)")},
		},
		"no issuer and no default issuer": {
			ann:      base(),
			defaults: func(d *Defaults) { d.Issuer.Name = "" },
			want:     field.ErrorList{field.Required(p(Issuer), "name the cert-manager issuer that signs this pod's certificate, or start the webhook with --default-issuer")},
		},
		"an issuer name with capitals": {
			ann: base(Issuer, "Demo_CA"),
			want: field.ErrorList{field.Invalid(p(Issuer), "Demo_CA",
				"must be a valid issuer name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")},
		},
		"app database is not a demo role": {
			ann:  base(App, "database"),
			want: field.ErrorList{field.NotSupported(p(App), "database", []string{"frontend", "backend"})},
		},
		"fs-group must be a number": {
			ann:  base(FSGroup, "nonroot"),
			want: field.ErrorList{field.Invalid(p(FSGroup), "nonroot", "must be a group ID from 1 to 4294967295: the CSI driver makes the certificate files readable by this group")},
		},
		"fs-group 0 is root's group, which needs no help": {
			ann:  base(FSGroup, "0"),
			want: field.ErrorList{field.Invalid(p(FSGroup), "0", "must be a group ID from 1 to 4294967295: the CSI driver makes the certificate files readable by this group")},
		},
		"fs-group past 32 bits": {
			ann:  base(FSGroup, "4294967296"),
			want: field.ErrorList{field.Invalid(p(FSGroup), "4294967296", "must be a group ID from 1 to 4294967295: the CSI driver makes the certificate files readable by this group")},
		},
		"use-mtls must be a boolean": {
			ann:  base(UseMTLS, "on"),
			want: field.ErrorList{field.NotSupported(p(UseMTLS), "on", []string{"true", "false"})},
		},
		"a container name that cannot exist": {
			ann: base(Containers, "App"),
			want: field.ErrorList{field.Invalid(p(Containers), "App",
				"not a valid container name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")},
		},
		"a common name longer than X.509 allows": {
			ann:  base(CommonName, strings.Repeat("a", 65)),
			want: field.ErrorList{field.TooLong(p(CommonName), strings.Repeat("a", 65), 64)},
		},
		"every problem is reported at once, not just the first": {
			ann: base(Enable, "yes", Duration, "forever", KeyAlgorithm, "DSA", MountPath, "/", App, "database"),
			want: field.ErrorList{
				field.NotSupported(p(Enable), "yes", []string{"true", "false"}),
				field.Invalid(p(Duration), "forever", "must be a Go duration such as 24h or 90m"),
				field.NotSupported(p(KeyAlgorithm), "DSA", []string{"ECDSA", "RSA"}),
				field.Invalid(p(MountPath), "/", "must not be the root directory; use a directory of its own such as /var/run/mtls"),
				field.NotSupported(p(App), "database", []string{"frontend", "backend"}),
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := testDefaults()
			if tc.defaults != nil {
				tc.defaults(&d)
			}
			got, _, errs := Parse(tc.ann, d)
			if diff := cmp.Diff(tc.want, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(Config{}, got); diff != "" {
				t.Errorf("a refused pod must yield no config (-want +got):\n%s", diff)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Field, "metadata.annotations[mtls.demo/") {
					t.Errorf("error %q does not point at an annotation", e.Error())
				}
			}
		})
	}
}

func TestParseWarnsAboutUnknownKeys(t *testing.T) {
	tests := map[string]struct {
		key  string
		want string
	}{
		"a dropped letter suggests the key": {
			key: "mtls.demo/isuer", want: "annotation mtls.demo/isuer is not known and is ignored; did you mean mtls.demo/issuer?",
		},
		"swapped letters suggest the key": {
			key: "mtls.demo/duraiton", want: "annotation mtls.demo/duraiton is not known and is ignored; did you mean mtls.demo/duration?",
		},
		"an underscore for a dash suggests the key": {
			key: "mtls.demo/mount_path", want: "annotation mtls.demo/mount_path is not known and is ignored; did you mean mtls.demo/mount-path?",
		},
		"something unrelated lists the known keys": {
			key:  "mtls.demo/colour",
			want: "annotation mtls.demo/colour is not known and is ignored; known keys: " + strings.Join(Keys(), ", "),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, warnings, errs := Parse(base(tc.key, "x"), testDefaults())
			if len(errs) > 0 {
				t.Fatalf("unknown keys must not be errors: %v", errs)
			}
			if diff := cmp.Diff([]string{tc.want}, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("keys outside the prefix are none of the webhook's business", func(t *testing.T) {
		_, warnings, _ := Parse(base("example.com/isuer", "x"), testDefaults())
		if len(warnings) != 0 {
			t.Errorf("got warnings %v", warnings)
		}
	})
}

func TestOptedIn(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "false": false, "yes": true, "": true} {
		if got := OptedIn(map[string]string{Enable: v}); got != want {
			t.Errorf("OptedIn(enable=%q) = %v, want %v", v, got, want)
		}
	}
	if OptedIn(nil) {
		t.Error("a pod without annotations is not opted in")
	}
}
