// Package app holds everything the three demo binaries share: their options
// (read from the environment the webhook sets), Prometheus metrics, HTTP
// handlers, the server loop and the load client. Each main.go only picks a
// role and calls Main or RunClient.
package app

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
)

// Role selects which server a process runs.
type Role string

// Roles: two servers and the load client.
const (
	RoleBackend  Role = "backend"
	RoleFrontend Role = "frontend"
	// RoleClient uses only the TLS half of Options.
	RoleClient Role = "client"
)

// DefaultMountDir is where the webhook mounts the CSI volume unless told
// otherwise; the file defaults derive from it.
const DefaultMountDir = "/var/run/mtls"

// Environment variable names. They are the contract with the webhook and the
// Helm chart, so they live in one place.
const (
	EnvPort           = "PORT"
	EnvOpsPort        = "OPS_PORT"
	EnvUseMTLS        = "USE_MTLS"
	EnvCertReload     = "CERT_RELOAD"
	EnvCertFile       = "MTLS_CERT_FILE"
	EnvKeyFile        = "MTLS_KEY_FILE"
	EnvCAFile         = "MTLS_CA_FILE"
	EnvAllowedClients = "ALLOWED_CLIENTS"
	EnvBackendURL     = "BACKEND_URL"
	EnvFrontendURL    = "FRONTEND_URL"
	EnvPollInterval   = "CERT_POLL_INTERVAL"
	EnvListenHost     = "LISTEN_HOST"
)

// Options configures a server (backend or frontend) and the TLS side of the
// client. Build it with Defaults, override fields or call FromEnv, then
// Validate.
type Options struct {
	Role Role
	// ListenHost is the address to bind (LISTEN_HOST); empty binds all
	// interfaces as a pod needs, local runs use 127.0.0.1.
	ListenHost string
	// Port is the main listener (PORT). It speaks HTTPS with client
	// certificates when UseMTLS is set, plain HTTP otherwise.
	Port int
	// OpsPort, when not zero, serves /healthz and /metrics in plain HTTP for
	// kubelet probes and Prometheus, which hold no client certificate.
	OpsPort int
	// UseMTLS defaults to true so that a pod that missed injection fails at
	// start instead of quietly serving plaintext.
	UseMTLS bool
	// CertReload watches the certificate files; false loads them once.
	CertReload bool
	Certs      certs.Paths
	// CertFromEnv records which file variables were set explicitly, so a
	// start-up error can say whether a default path was used.
	CertFromEnv map[string]bool
	// PollInterval backs up file events with periodic re-reads.
	PollInterval time.Duration
	// AllowedClients restricts callers by identity; empty admits any
	// certificate issued by the trusted CA.
	AllowedClients []string
	// BackendURL is where the frontend forwards /submit.
	BackendURL string
}

// Defaults returns the options a pod gets with no environment at all.
func Defaults(role Role) Options {
	return Options{
		Role:       role,
		Port:       8080,
		OpsPort:    0,
		UseMTLS:    true,
		CertReload: true,
		Certs: certs.Paths{
			Cert: filepath.Join(DefaultMountDir, "tls.crt"),
			Key:  filepath.Join(DefaultMountDir, "tls.key"),
			CA:   filepath.Join(DefaultMountDir, "ca.crt"),
		},
		PollInterval: 10 * time.Second,
		BackendURL:   "https://backend-svc:8080",
	}
}

// FromEnv applies the environment (looked up through getenv, so tests need
// no process environment) on top of Defaults.
func FromEnv(role Role, getenv func(string) string) (Options, error) {
	o := Defaults(role)
	o.CertFromEnv = map[string]bool{}
	var errs []error
	if v := getenv(EnvPort); v != "" {
		p, err := parsePort(EnvPort, v, false)
		errs = append(errs, err)
		o.Port = p
	}
	o.ListenHost = getenv(EnvListenHost)
	if v := getenv(EnvOpsPort); v != "" {
		p, err := parsePort(EnvOpsPort, v, true)
		errs = append(errs, err)
		o.OpsPort = p
	}
	if v := getenv(EnvUseMTLS); v != "" {
		b, err := parseBool(EnvUseMTLS, v)
		errs = append(errs, err)
		o.UseMTLS = b
	}
	if v := getenv(EnvCertReload); v != "" {
		b, err := parseBool(EnvCertReload, v)
		errs = append(errs, err)
		o.CertReload = b
	}
	for _, f := range []struct {
		env string
		dst *string
	}{{EnvCertFile, &o.Certs.Cert}, {EnvKeyFile, &o.Certs.Key}, {EnvCAFile, &o.Certs.CA}} {
		if v := getenv(f.env); v != "" {
			*f.dst = v
			o.CertFromEnv[f.env] = true
		}
	}
	if v := getenv(EnvPollInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive Go duration such as 10s or 500ms", EnvPollInterval, v))
		}
		o.PollInterval = d
	}
	if v := getenv(EnvAllowedClients); v != "" {
		ids, err := ParseAllowedClients(v)
		errs = append(errs, err)
		o.AllowedClients = ids
	}
	if v := getenv(EnvBackendURL); v != "" {
		o.BackendURL = v
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// Validate checks the options as a whole. Every error names the variable,
// the bad value and what is allowed.
func (o *Options) Validate() error {
	var errs []error
	if o.Role != RoleBackend && o.Role != RoleFrontend && o.Role != RoleClient {
		errs = append(errs, fmt.Errorf("role %q: want %q, %q or %q", o.Role, RoleBackend, RoleFrontend, RoleClient))
	}
	if o.Port < 0 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("%s=%d: want 1-65535", EnvPort, o.Port))
	}
	if o.OpsPort < 0 || o.OpsPort > 65535 || (o.OpsPort != 0 && o.OpsPort == o.Port) {
		errs = append(errs, fmt.Errorf("%s=%d: want 0 (off) or 1-65535, different from %s", EnvOpsPort, o.OpsPort, EnvPort))
	}
	if o.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("%s=%s: want a positive duration", EnvPollInterval, o.PollInterval))
	}
	if o.UseMTLS {
		for env, p := range map[string]string{EnvCertFile: o.Certs.Cert, EnvKeyFile: o.Certs.Key, EnvCAFile: o.Certs.CA} {
			if p == "" {
				errs = append(errs, fmt.Errorf("%s is empty: %s=true needs a file path", env, EnvUseMTLS))
			}
		}
	}
	if o.Role == RoleFrontend {
		if _, err := o.Backend(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Backend parses BackendURL for the current mode. With mTLS on, an http://
// URL is upgraded to https:// (the webhook turns plain apps into mTLS apps
// without rewriting their configuration); with mTLS off an https:// URL is an
// error, because plain mode has no certificate to verify the backend with.
func (o *Options) Backend() (*url.URL, error) {
	u, err := url.Parse(o.BackendURL)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%s=%q: want an absolute URL such as https://backend-svc:8080", EnvBackendURL, o.BackendURL)
	}
	switch {
	case u.Scheme == "https" && !o.UseMTLS:
		return nil, fmt.Errorf("%s=%q: https needs %s=true; use http:// in plain mode", EnvBackendURL, o.BackendURL, EnvUseMTLS)
	case u.Scheme == "http" && o.UseMTLS:
		u.Scheme = "https"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%s=%q: scheme %q, want http or https", EnvBackendURL, o.BackendURL, u.Scheme)
	}
	return u, nil
}

func parsePort(env, v string, allowZero bool) (int, error) {
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 || (p == 0 && !allowZero) {
		if allowZero {
			return 0, fmt.Errorf("%s=%q: want 0 (off) or a port 1-65535", env, v)
		}
		return 0, fmt.Errorf("%s=%q: want a port 1-65535", env, v)
	}
	return p, nil
}

func parseBool(env, v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q: want true or false", env, v)
}

// maxIdentityLen bounds one ALLOWED_CLIENTS entry; URI SANs in practice are
// far shorter, and a bound keeps a mistaken paste from becoming a policy.
const maxIdentityLen = 1024

// ParseAllowedClients splits ALLOWED_CLIENTS: comma-separated identities,
// blanks around entries ignored, duplicates dropped. An entry is either a URI
// (scheme://host/path, e.g. spiffe://cluster.local/ns/demo/sa/frontend) or a
// common name. Entries with control characters or inner whitespace, or URIs
// without host, are rejected so that a typo cannot silently admit no one or
// everyone.
func ParseAllowedClients(v string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var errs []error
	for i, raw := range strings.Split(v, ",") {
		id := strings.TrimSpace(raw)
		if id == "" {
			continue
		}
		if err := checkIdentity(id); err != nil {
			errs = append(errs, fmt.Errorf("%s entry %d %q: %w", EnvAllowedClients, i+1, id, err))
			continue
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func checkIdentity(id string) error {
	if len(id) > maxIdentityLen {
		return fmt.Errorf("longer than %d bytes", maxIdentityLen)
	}
	if !utf8.ValidString(id) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return errors.New("contains whitespace or control characters; separate entries with commas")
		}
	}
	if strings.Contains(id, "://") {
		u, err := url.Parse(id)
		if err != nil {
			return fmt.Errorf("not a valid URI: %w", err)
		}
		if u.Scheme == "" || u.Host == "" {
			return errors.New("URI needs a scheme and a host, e.g. spiffe://cluster.local/ns/demo/sa/frontend")
		}
		if u.String() != id {
			return fmt.Errorf("URI is not in canonical form (%q); certificates carry the canonical form", u.String())
		}
	}
	return nil
}
