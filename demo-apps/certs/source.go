package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mtls-demo/mtls-webhook/pkg/tlsprofile"
)

// Observer receives the events worth counting. The app package implements it
// with Prometheus metrics; keeping it an interface keeps this package free of
// any metrics library.
type Observer interface {
	// Loaded reports a set put into service (the first load and each reload).
	Loaded(b *Bundle, initial bool)
	// ReloadFailed reports a changed set that was refused.
	ReloadFailed(reason string)
	// HandshakeFailed reports a peer refused during the TLS handshake.
	HandshakeFailed(reason string)
}

type nopObserver struct{}

func (nopObserver) Loaded(*Bundle, bool)   {}
func (nopObserver) ReloadFailed(string)    {}
func (nopObserver) HandshakeFailed(string) {}

// Config configures a Source.
type Config struct {
	Paths Paths
	// Watch enables hot reload (CERT_RELOAD=true). Without it the files are
	// read once and a rotation needs a restart, as in the seed demo.
	Watch bool
	// PollInterval re-reads the files even when no file event arrived, for
	// file systems where inotify misses changes. Zero means 10s.
	PollInterval time.Duration
	// Observer is told about loads and failures; nil ignores them.
	Observer Observer
	// Logger receives reload and refusal logs; nil uses slog.Default().
	Logger *slog.Logger
}

// Source serves the current certificate set and replaces it when the files
// change.
type Source struct {
	cfg Config
	obs Observer
	log *slog.Logger
	cur atomic.Pointer[Bundle]

	mu      sync.Mutex // serializes reloads
	lastBad [sha256.Size]byte
	lastErr error
	hooks   []func(*Bundle)
}

// NewSource loads the initial set. A failure here is fatal for the caller:
// an mTLS app without its certificate must not start.
func NewSource(cfg Config) (*Source, error) {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Second
	}
	s := &Source{cfg: cfg, obs: cfg.Observer, log: cfg.Logger}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	b, err := Load(cfg.Paths)
	if err != nil {
		return nil, fmt.Errorf("load certificate set: %w", err)
	}
	b.server = s.serverConfigFor(b)
	s.cur.Store(b)
	s.obs.Loaded(b, true)
	s.log.Info("certificate loaded", "serial", b.Serial, "identity", Identity(b.Leaf),
		"not_after", b.Leaf.NotAfter, "cas", len(b.CAs), "hot_reload", cfg.Watch)
	return s, nil
}

// Current returns the set in service. It never returns nil.
func (s *Source) Current() *Bundle { return s.cur.Load() }

// OnReload registers fn to run after each successful reload, e.g. to drop
// idle client connections so the next request presents the new certificate.
func (s *Source) OnReload(fn func(*Bundle)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Reload re-reads the files and swaps them in if they changed and are valid.
// It reports whether a new set went into service. A refused set leaves the
// current one in place; the same bad content is logged and counted once.
func (s *Source) Reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, err := readFiles(s.cfg.Paths)
	var d [sha256.Size]byte
	if err == nil {
		d = raw.digest()
		if d == s.Current().digest {
			s.lastBad = [sha256.Size]byte{}
			return false, nil
		}
	} else {
		d = sha256.Sum256([]byte(err.Error()))
	}
	if d == s.lastBad {
		return false, s.lastErr
	}
	var b *Bundle
	if err == nil {
		b, err = parse(raw)
	}
	if err != nil {
		s.lastBad, s.lastErr = d, err
		s.obs.ReloadFailed(Reason(err))
		s.log.Error("certificate reload refused, keeping the certificate in service",
			"reason", Reason(err), "error", err.Error(), "serial_in_service", s.Current().Serial)
		return false, err
	}
	b.server = s.serverConfigFor(b)
	old := s.cur.Swap(b)
	s.lastBad, s.lastErr = [sha256.Size]byte{}, nil
	s.obs.Loaded(b, false)
	s.log.Info("certificate reloaded", "serial", b.Serial, "previous_serial", old.Serial,
		"identity", Identity(b.Leaf), "not_after", b.Leaf.NotAfter, "cas", len(b.CAs))
	for _, fn := range s.hooks {
		fn(b)
	}
	return true, nil
}

// Run watches the certificate directories until ctx ends. With Watch off it
// just waits, so callers need no special case. File events are debounced
// briefly because one atomic swap produces several of them.
func (s *Source) Run(ctx context.Context) error {
	if !s.cfg.Watch {
		<-ctx.Done()
		return nil
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("file watching unavailable, polling only", "error", err.Error(), "poll_interval", s.cfg.PollInterval)
	} else {
		defer w.Close()
		seen := map[string]bool{}
		for _, p := range []string{s.cfg.Paths.Cert, s.cfg.Paths.Key, s.cfg.Paths.CA} {
			dir := filepath.Dir(p)
			if seen[dir] {
				continue
			}
			seen[dir] = true
			if err := w.Add(dir); err != nil {
				s.log.Warn("cannot watch certificate directory, polling only", "dir", dir, "error", err.Error())
			}
		}
		events, errs = w.Events, w.Errors
	}
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
			debounce.Reset(20 * time.Millisecond)
		case err := <-errs:
			s.log.Warn("file watch error", "error", fmt.Sprint(err))
		case <-debounce.C:
			_, _ = s.Reload()
		case <-poll.C:
			_, _ = s.Reload()
		}
	}
}

// ServerConfig returns the listener's TLS configuration. Every handshake
// fetches the configuration prebuilt for the current set, so the served
// certificate and the trusted client CAs move together on reload.
//
// Client certificates are requested by the handshake and required and
// verified in VerifyConnection against the current CA pool, rather than by
// tls.RequireAndVerifyClientCert: the standard check would refuse the same
// peers, but its errors only reach a log line, while ours are classified for
// the handshake-failure metric.
//
// Versions and cipher suites are the intermediate profile of package
// tlsprofile, on both configurations (the outer one only answers a client
// that GetConfigForClient could not).
func (s *Source) ServerConfig() *tls.Config {
	c := &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().server, nil
		},
	}
	tlsprofile.Apply(c)
	return c
}

func (s *Source) serverConfigFor(b *Bundle) *tls.Config {
	c := &tls.Config{
		Certificates: []tls.Certificate{*b.cert},
		ClientCAs:    b.Roots,
		ClientAuth:   tls.RequestClientCert,
		// Without resumption every connection shows its certificate, so
		// identity checks and serial logs always see what the peer holds now.
		SessionTicketsDisabled: true,
		NextProtos:             []string{"http/1.1"},
		// The roots of the same bundle as ClientCAs, so a reload in the
		// middle of a handshake cannot pair one CA set with another.
		VerifyConnection: func(cs tls.ConnectionState) error { return s.verifyClient(cs, b.Roots) },
	}
	tlsprofile.Apply(c)
	return c
}

// ErrNoClientCertificate is returned to a client that sent no certificate.
var ErrNoClientCertificate = errors.New("mtls: client certificate required")

func (s *Source) verifyClient(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		s.obs.HandshakeFailed("no_client_certificate")
		return ErrNoClientCertificate
	}
	return s.verifyPeer(cs.PeerCertificates, roots, x509.ExtKeyUsageClientAuth, "", "client")
}

// ClientConfig returns a TLS configuration for calling serverName. The
// standard verification is switched off only so that VerifyConnection can
// do the same checks (chain and server name) against the CA pool current at
// the time of the handshake; a fixed RootCAs would go stale on rotation.
func (s *Source) ClientConfig(serverName string) (*tls.Config, error) {
	if serverName == "" {
		return nil, errors.New("mtls: server name required to verify the server")
	}
	c := &tls.Config{
		InsecureSkipVerify: true, // verification happens in VerifyConnection
		NextProtos:         []string{"http/1.1"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				s.obs.HandshakeFailed("no_server_certificate")
				return errors.New("mtls: server sent no certificate")
			}
			return s.verifyPeer(cs.PeerCertificates, s.cur.Load().Roots, x509.ExtKeyUsageServerAuth, serverName, "server")
		},
	}
	tlsprofile.Apply(c)
	return c, nil
}

func (s *Source) verifyPeer(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, name, role string) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       name,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		reason := VerifyReason(err)
		s.obs.HandshakeFailed(reason)
		s.log.Warn("peer certificate refused", "peer_role", role, "reason", reason,
			"peer_identity", Identity(chain[0]), "peer_serial", SerialHex(chain[0]), "error", err.Error())
		return fmt.Errorf("mtls: %s certificate %q refused: %w", role, Identity(chain[0]), err)
	}
	return nil
}

// VerifyReason maps an x509 verification error to a metric label.
func VerifyReason(err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	switch {
	case errors.As(err, &ua):
		return "unknown_authority"
	case errors.As(err, &he):
		return "hostname_mismatch"
	case errors.As(err, &ci):
		switch ci.Reason {
		case x509.Expired:
			return "expired"
		case x509.IncompatibleUsage:
			return "wrong_key_usage"
		default:
			return "invalid_certificate"
		}
	default:
		return "verify_error"
	}
}
