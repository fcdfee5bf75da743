// Package fakecsi serves the CSI Identity service on a unix socket for the
// sidecars' tests: a driver name, and a Probe answer the test controls.
package fakecsi

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Server is a CSI identity server.
type Server struct {
	csi.UnimplementedIdentityServer
	Name string

	mu     sync.Mutex
	ready  *bool // nil: Probe leaves Ready unset
	err    error
	delay  time.Duration
	probes int
}

// SetProbe sets what Probe answers next: ready (nil: unset), an error, and
// a delay before answering.
func (s *Server) SetProbe(ready *bool, err error, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready, s.err, s.delay = ready, err, delay
}

// Probes returns how many Probe calls arrived.
func (s *Server) Probes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probes
}

func (s *Server) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: s.Name, VendorVersion: "test"}, nil
}

func (s *Server) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{}, nil
}

func (s *Server) Probe(ctx context.Context, _ *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	s.mu.Lock()
	s.probes++
	ready, err, delay := s.ready, s.err, s.delay
	s.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return nil, status.Error(codes.DeadlineExceeded, "probe timed out")
	}
	if err != nil {
		return nil, err
	}
	resp := &csi.ProbeResponse{}
	if ready != nil {
		resp.Ready = wrapperspb.Bool(*ready)
	}
	return resp, nil
}

// Serve serves s on the unix socket sock until the test ends.
func Serve(t *testing.T, s *Server, sock string) {
	t.Helper()
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = os.Remove(sock)
	})
}

// ShortDir returns a fresh directory with a path short enough for unix
// sockets (t.TempDir's can exceed the 108-byte limit), removed at the end.
func ShortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
