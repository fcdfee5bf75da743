package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
)

// Service is one running backend or frontend: its handlers, metrics and,
// in mTLS mode, its certificate source.
type Service struct {
	opts     Options
	log      *slog.Logger
	metrics  *Metrics
	source   *certs.Source // nil in plain mode
	backend  *url.URL      // frontend only
	upstream *upstream     // frontend only
	mux      *http.ServeMux
}

// New validates opts and loads the certificates. In mTLS mode a missing or
// unreadable file is an error naming the variable and path, so a pod that
// was not injected fails at start rather than serving plaintext.
func New(opts Options, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if len(opts.AllowedClients) > 0 && !opts.UseMTLS {
		return nil, fmt.Errorf("%s is set but %s=false: plain HTTP carries no caller identity to check", EnvAllowedClients, EnvUseMTLS)
	}
	s := &Service{opts: opts, log: log.With("app", string(opts.Role)), metrics: NewMetrics(string(opts.Role))}
	if opts.UseMTLS {
		src, err := openSource(opts, s.metrics, s.log)
		if err != nil {
			return nil, err
		}
		s.source = src
	}
	if opts.Role == RoleFrontend {
		u, err := opts.Backend()
		if err != nil {
			return nil, err
		}
		s.backend = u
		var tlsCfg *tls.Config
		if s.source != nil {
			tlsCfg, err = s.source.ClientConfig(u.Hostname())
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %w", EnvBackendURL, opts.BackendURL, err)
			}
		}
		s.upstream = newUpstream(tlsCfg, 10*time.Second, s.source)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.metrics.Handler())
	switch opts.Role {
	case RoleBackend:
		s.mux.HandleFunc("/process", s.authorize("process", s.process))
	case RoleFrontend:
		s.mux.HandleFunc("/submit", s.authorize("submit", s.submit))
	}
	return s, nil
}

// openSource checks the three files before parsing them so the error says
// which variable points where and what to do about it.
func openSource(opts Options, m *Metrics, log *slog.Logger) (*certs.Source, error) {
	for _, f := range []struct{ env, path string }{
		{EnvCertFile, opts.Certs.Cert}, {EnvKeyFile, opts.Certs.Key}, {EnvCAFile, opts.Certs.CA},
	} {
		if _, err := os.Stat(f.path); err != nil {
			origin := "default"
			if opts.CertFromEnv[f.env] {
				origin = "set"
			}
			return nil, fmt.Errorf("%s=%s (%s): %w; %s=true (the default) needs the certificate volume "+
				"(was the pod injected by the mtls webhook?); set %s=false to run plain HTTP on purpose",
				f.env, f.path, origin, err, EnvUseMTLS, EnvUseMTLS)
		}
	}
	src, err := certs.NewSource(certs.Config{
		Paths: opts.Certs, Watch: opts.CertReload, PollInterval: opts.PollInterval, Observer: m, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s/%s/%s: %w", EnvCertFile, EnvKeyFile, EnvCAFile, err)
	}
	return src, nil
}

// Metrics exposes the registry, for tests and the ops listener.
func (s *Service) Metrics() *Metrics { return s.metrics }

// Source is the certificate source, nil in plain mode.
func (s *Service) Source() *certs.Source { return s.source }

// Run serves main (TLS in mTLS mode) and, when not nil, ops (plain HTTP with
// /healthz and /metrics only) until ctx ends, then shuts down gracefully.
func (s *Service) Run(ctx context.Context, main, ops net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errLog,
		// HTTP/1.1 only: one TLS connection per in-flight request keeps the
		// demo's connection accounting simple to follow in logs.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 3)
	if s.source != nil {
		srv.TLSConfig = s.source.ServerConfig()
		go func() { errc <- s.source.Run(ctx) }()
		go func() { errc <- ignoreClosed(srv.ServeTLS(main, "", "")) }()
	} else {
		go func() { errc <- ignoreClosed(srv.Serve(main)) }()
	}
	if ops != nil {
		opsMux := http.NewServeMux()
		opsMux.HandleFunc("GET /healthz", s.healthz)
		opsMux.Handle("GET /metrics", s.metrics.Handler())
		opsSrv := &http.Server{Handler: opsMux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: errLog}
		servers = append(servers, opsSrv)
		go func() { errc <- ignoreClosed(opsSrv.Serve(ops)) }()
	}
	s.log.Info("serving", "addr", main.Addr().String(), "mtls", s.opts.UseMTLS, "cert_reload", s.opts.CertReload,
		"allowed_clients", s.opts.AllowedClients, "backend_url", s.backendString())
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil && runErr == nil {
			runErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	if s.upstream != nil {
		s.upstream.close()
	}
	s.log.Info("stopped")
	return runErr
}

func (s *Service) backendString() string {
	if s.backend == nil {
		return ""
	}
	return s.backend.String()
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// healthz reports ready while the certificate in service is still valid: an
// expired certificate means rotation is stuck and peers will refuse us.
func (s *Service) healthz(w http.ResponseWriter, _ *http.Request) {
	body := map[string]any{"status": "ok", "app": s.opts.Role, "mtls": s.opts.UseMTLS}
	code := http.StatusOK
	if s.source != nil {
		b := s.source.Current()
		body["serial"] = b.Serial
		body["identity"] = certs.Identity(b.Leaf)
		body["not_after"] = b.Leaf.NotAfter.UTC().Format(time.RFC3339)
		if time.Now().After(b.Leaf.NotAfter) {
			body["status"] = "certificate expired"
			code = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, body)
}

// peer describes the caller of one request.
type peer struct {
	Identity string
	Serial   string
	TLS      string
}

func peerOf(r *http.Request) peer {
	if r.TLS == nil {
		return peer{}
	}
	p := peer{TLS: tls.VersionName(r.TLS.Version)}
	if len(r.TLS.PeerCertificates) > 0 {
		p.Identity = certs.Identity(r.TLS.PeerCertificates[0])
		p.Serial = certs.SerialHex(r.TLS.PeerCertificates[0])
	}
	return p
}

// authorize enforces ALLOWED_CLIENTS and logs every request with the peer
// identity and the serials on both sides.
func (s *Service) authorize(name string, next func(http.ResponseWriter, *http.Request, peer) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p := peerOf(r)
		var code int
		switch {
		case r.Method != http.MethodPost:
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
			code = http.StatusMethodNotAllowed
		case !s.allowed(r):
			code = http.StatusForbidden
			writeJSON(w, code, map[string]string{
				"error":  fmt.Sprintf("caller %q is not in %s", p.Identity, EnvAllowedClients),
				"caller": p.Identity,
			})
		default:
			code = next(w, r, p)
		}
		s.metrics.Request(name, outcome(code))
		level := slog.LevelInfo
		if code >= 400 {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request", "handler", name, "status", code,
			"peer_identity", p.Identity, "peer_serial", p.Serial, "serial", s.servingSerial(),
			"tls", p.TLS, "remote", r.RemoteAddr, "duration_ms", float64(time.Since(start).Microseconds())/1000)
	}
}

func (s *Service) allowed(r *http.Request) bool {
	if len(s.opts.AllowedClients) == 0 {
		return true
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	for _, id := range certs.Identities(r.TLS.PeerCertificates[0]) {
		if slices.Contains(s.opts.AllowedClients, id) {
			return true
		}
	}
	return false
}

func (s *Service) servingSerial() string {
	if s.source == nil {
		return ""
	}
	return s.source.Current().Serial
}

func outcome(code int) string {
	switch {
	case code < 300:
		return "ok"
	case code == http.StatusForbidden:
		return "forbidden"
	case code == http.StatusBadGateway:
		return "upstream_error"
	case code < 500:
		return "bad_request"
	default:
		return "error"
	}
}

// maxBody bounds request bodies; the demo's requests are a few bytes.
const maxBody = 64 << 10

// readRequestID accepts {"request_id": "1"} and, since the seed's client
// sent numbers in some versions, {"request_id": 1}.
func readRequestID(r io.Reader) (string, error) {
	var body struct {
		RequestID json.RawMessage `json:"request_id"`
	}
	if err := json.NewDecoder(io.LimitReader(r, maxBody)).Decode(&body); err != nil {
		return "", fmt.Errorf("body must be JSON like {\"request_id\": \"1\"}: %w", err)
	}
	var id string
	if err := json.Unmarshal(body.RequestID, &id); err != nil {
		var n json.Number
		if err := json.Unmarshal(body.RequestID, &n); err != nil {
			return "", errors.New(`request_id missing or not a string/number`)
		}
		id = n.String()
	}
	if id == "" || len(id) > 128 {
		return "", errors.New("request_id must be 1-128 characters")
	}
	return id, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
