// Command registrar registers a CSI driver with the kubelet through the
// kubelet's plugin watcher, as kubernetes-csi/node-driver-registrar does
// (whose module the Go proxy here does not serve). It serves the kubelet's
// own plugin-registration API (k8s.io/kubelet/pkg/apis/pluginregistration/v1)
// on <plugin-registration-path>/<driver>-reg.sock:
//
//   - GetInfo answers Type "CSIPlugin", Name = the driver's name (asked
//     over the CSI socket with GetPluginInfo), Endpoint =
//     --kubelet-registration-path, SupportedVersions ["1.0.0"];
//   - NotifyRegistrationStatus with an error ends the program (exit 1), so
//     the kubelet restarts the container and registration is retried.
//
// It accepts the flags the cert-manager csi-driver chart passes (-v,
// --csi-address, --kubelet-registration-path) and the other common ones of
// the upstream image. On SIGTERM/SIGINT it removes its socket and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/mtls-demo/mtls-webhook/hack/tools/csisidecars/internal/csiconn"
)

// version is stamped at build time: -ldflags "-X main.version=v2.15.0-local".
var version = "dev"

type config struct {
	csiAddress              string
	kubeletRegistrationPath string
	pluginRegistrationPath  string
	timeout                 time.Duration
	httpEndpoint            string
	// registeredFile is written once the kubelet confirmed the
	// registration; --mode=kubelet-registration-probe checks it.
	registeredFile string
}

func main() {
	var cfg config
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	verbosity := fs.Int("v", 0, "log verbosity")
	fs.StringVar(&cfg.csiAddress, "csi-address", "/run/csi/socket", "path of the CSI driver's socket in this container")
	fs.StringVar(&cfg.kubeletRegistrationPath, "kubelet-registration-path", "", "path of the CSI driver's socket on the node, as the kubelet sees it (required)")
	fs.StringVar(&cfg.pluginRegistrationPath, "plugin-registration-path", "/registration", "the kubelet's plugins_registry directory, as mounted in this container")
	fs.DurationVar(&cfg.timeout, "timeout", time.Second, "timeout of each CSI call")
	fs.StringVar(&cfg.httpEndpoint, "http-endpoint", "", "address of /healthz (empty: none), e.g. :9809")
	healthPort := fs.Int("health-port", 0, "deprecated: port of /healthz; use --http-endpoint")
	mode := fs.String("mode", "registration", `"registration", or "kubelet-registration-probe" (exit 0 when the kubelet registered the driver)`)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Duration("connection-timeout", 0, "deprecated, ignored")
	fs.Bool("enable-pprof", false, "ignored")
	fs.Bool("logtostderr", true, "ignored (always stderr)")
	_ = fs.Parse(os.Args[1:])
	cfg.registeredFile = defaultRegisteredFile
	if *showVersion {
		fmt.Println(filepath.Base(os.Args[0]), version)
		return
	}
	if cfg.httpEndpoint == "" && *healthPort > 0 {
		cfg.httpEndpoint = ":" + strconv.Itoa(*healthPort)
	}
	l := csiconn.NewLogger("registrar", *verbosity)
	l.Printf("version %s, node %q, flags %q", version, os.Getenv("KUBE_NODE_NAME"), os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch *mode {
	case "registration":
		err = run(ctx, l, cfg)
	case "kubelet-registration-probe":
		err = probeRegistered(cfg)
	default:
		err = fmt.Errorf("--mode=%s: want registration or kubelet-registration-probe", *mode)
	}
	if err != nil {
		l.Printf("error: %v", err)
		os.Exit(1)
	}
}

// defaultRegisteredFile is where the registrar notes a confirmed registration
// (best effort: the chart's root file system is read-only, so the probe
// mode needs a writable /run to be useful).
const defaultRegisteredFile = "/run/csi-node-driver-registrar/registered"

func probeRegistered(cfg config) error {
	if _, err := os.Stat(cfg.kubeletRegistrationPath); err != nil {
		return fmt.Errorf("driver socket: %w", err)
	}
	if _, err := os.Stat(cfg.registeredFile); err != nil {
		return fmt.Errorf("not registered with the kubelet yet: %w", err)
	}
	return nil
}

// registrationServer answers the kubelet.
type registrationServer struct {
	registerapi.UnimplementedRegistrationServer
	driver, endpoint string
	l                *csiconn.Logger
	failed           chan error
	registered       chan struct{}
}

func (s *registrationServer) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	s.l.V(2, "GetInfo from the kubelet")
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              s.driver,
		Endpoint:          s.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (s *registrationServer) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !st.GetPluginRegistered() {
		err := fmt.Errorf("the kubelet refused driver %s: %s", s.driver, st.GetError())
		select {
		case s.failed <- err:
		default:
		}
		return &registerapi.RegistrationStatusResponse{}, nil
	}
	s.l.Printf("the kubelet registered driver %s (endpoint %s)", s.driver, s.endpoint)
	select {
	case s.registered <- struct{}{}:
	default:
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// run waits for the driver, serves the registration socket until ctx ends
// (nil) or the kubelet reports a failed registration (error), and removes
// the socket before returning.
func run(ctx context.Context, l *csiconn.Logger, cfg config) error {
	if cfg.kubeletRegistrationPath == "" {
		return errors.New("--kubelet-registration-path is required")
	}
	conn, err := csiconn.Dial(ctx, l, cfg.csiAddress)
	if err != nil {
		return err
	}
	defer conn.Close()
	driver, err := csiconn.DriverName(ctx, l, conn, cfg.timeout)
	if err != nil {
		return err
	}
	l.Printf("CSI driver %s at %s (kubelet path %s)", driver, cfg.csiAddress, cfg.kubeletRegistrationPath)

	sock := filepath.Join(cfg.pluginRegistrationPath, driver+"-reg.sock")
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale socket: %w", err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer os.Remove(sock)
	srv := grpc.NewServer()
	rs := &registrationServer{driver: driver, endpoint: cfg.kubeletRegistrationPath, l: l,
		failed: make(chan error, 1), registered: make(chan struct{}, 1)}
	registerapi.RegisterRegistrationServer(srv, rs)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	// Let the kubelet's last call (a refused NotifyRegistrationStatus)
	// get its answer before the server goes.
	defer func() {
		t := time.AfterFunc(2*time.Second, srv.Stop)
		srv.GracefulStop()
		t.Stop()
	}()
	l.Printf("serving the kubelet plugin registration API on %s", sock)

	if cfg.httpEndpoint != "" {
		hs := &http.Server{Addr: cfg.httpEndpoint, Handler: healthz(sock), ReadHeaderTimeout: 5 * time.Second}
		hl, err := net.Listen("tcp", cfg.httpEndpoint)
		if err != nil {
			return err
		}
		go func() { _ = hs.Serve(hl) }()
		defer hs.Close()
	}

	for {
		select {
		case <-ctx.Done():
			l.Printf("stopping: %v", context.Cause(ctx))
			return nil
		case err := <-rs.failed:
			return err
		case err := <-serveErr:
			return fmt.Errorf("registration server: %w", err)
		case <-rs.registered:
			if cfg.registeredFile != "" {
				if err := os.MkdirAll(filepath.Dir(cfg.registeredFile), 0o755); err == nil {
					_ = os.WriteFile(cfg.registeredFile, []byte(driver+"\n"), 0o644)
				}
			}
		}
	}
}

// healthz answers 200 while the registration socket exists.
func healthz(sock string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(sock); err != nil {
			http.Error(w, "registration socket: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}
