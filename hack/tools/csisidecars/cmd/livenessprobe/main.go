// Command livenessprobe serves /healthz for a CSI driver by calling the
// driver's CSI Probe over its socket, as kubernetes-csi/livenessprobe does
// (whose module the Go proxy here does not serve): 200 "ok" when Probe
// succeeds and does not report ready=false, 500 with the reason otherwise.
// The kubelet's livenessProbe on the driver container points at this port.
//
// It accepts the flags the cert-manager csi-driver chart passes
// (--csi-address, --probe-timeout, --health-port, -v) and --http-endpoint.
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

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"

	"github.com/mtls-demo/mtls-webhook/hack/tools/csisidecars/internal/csiconn"
)

// version is stamped at build time: -ldflags "-X main.version=v2.17.0-local".
var version = "dev"

type config struct {
	csiAddress   string
	probeTimeout time.Duration
	httpEndpoint string
}

func main() {
	var cfg config
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	verbosity := fs.Int("v", 0, "log verbosity")
	fs.StringVar(&cfg.csiAddress, "csi-address", "/run/csi/socket", "path of the CSI driver's socket")
	fs.DurationVar(&cfg.probeTimeout, "probe-timeout", time.Second, "timeout of each CSI Probe call")
	healthPort := fs.Int("health-port", 9808, "TCP port of /healthz on all addresses")
	fs.StringVar(&cfg.httpEndpoint, "http-endpoint", "", "address of /healthz (overrides --health-port), e.g. 127.0.0.1:9808")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.String("metrics-address", "", "ignored (no metrics)")
	fs.String("metrics-path", "/metrics", "ignored (no metrics)")
	fs.Bool("logtostderr", true, "ignored (always stderr)")
	_ = fs.Parse(os.Args[1:])
	if *showVersion {
		fmt.Println(filepath.Base(os.Args[0]), version)
		return
	}
	if cfg.httpEndpoint == "" {
		cfg.httpEndpoint = ":" + strconv.Itoa(*healthPort)
	}
	l := csiconn.NewLogger("livenessprobe", *verbosity)
	l.Printf("version %s, flags %q", version, os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	lis, err := net.Listen("tcp", cfg.httpEndpoint)
	if err == nil {
		err = run(ctx, l, cfg, lis)
	}
	if err != nil {
		l.Printf("error: %v", err)
		os.Exit(1)
	}
}

// run connects to the driver and serves /healthz on lis until ctx ends.
func run(ctx context.Context, l *csiconn.Logger, cfg config, lis net.Listener) error {
	conn, err := csiconn.Dial(ctx, l, cfg.csiAddress)
	if err != nil {
		return err
	}
	defer conn.Close()
	driver, err := csiconn.DriverName(ctx, l, conn, cfg.probeTimeout)
	if err != nil {
		return err
	}
	l.Printf("CSI driver %s at %s; /healthz on %s", driver, cfg.csiAddress, lis.Addr())
	srv := &http.Server{Handler: handler(l, conn, driver, cfg.probeTimeout), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func handler(l *csiconn.Logger, conn *grpc.ClientConn, driver string, timeout time.Duration) http.Handler {
	client := csi.NewIdentityClient(conn)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		resp, err := client.Probe(ctx, &csi.ProbeRequest{})
		switch {
		case err != nil:
			l.Printf("health check failed: Probe of %s: %v", driver, err)
			http.Error(w, "Probe of "+driver+": "+err.Error(), http.StatusInternalServerError)
		case resp.GetReady() != nil && !resp.GetReady().GetValue():
			l.Printf("health check failed: driver %s is not ready", driver)
			http.Error(w, "driver "+driver+" is not ready", http.StatusInternalServerError)
		default:
			l.V(5, "health check succeeded")
			_, _ = w.Write([]byte("ok"))
		}
	})
	return mux
}
