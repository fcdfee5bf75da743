// Package csiconn is what both CSI sidecars share: flag handling the way
// the kubernetes-csi sidecars accept it, a leveled logger for -v, and a
// gRPC connection to a CSI driver's unix socket that waits for the socket.
package csiconn

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Logger logs with klog-style verbosity: V(n) logs only when -v >= n.
type Logger struct {
	*log.Logger
	Verbosity int
}

// NewLogger logs to stderr with the given program name.
func NewLogger(name string, verbosity int) *Logger {
	return &Logger{Logger: log.New(os.Stderr, name+": ", log.LstdFlags|log.Lmicroseconds), Verbosity: verbosity}
}

// V logs when the verbosity is at least level.
func (l *Logger) V(level int, format string, args ...any) {
	if l.Verbosity >= level {
		l.Printf(format, args...)
	}
}

// SocketPath turns a --csi-address ("/plugin/csi.sock",
// "unix:///plugin/csi.sock" or "unix:/plugin/csi.sock") into a file path.
func SocketPath(address string) (string, error) {
	p := address
	for _, prefix := range []string{"unix://", "unix:"} {
		if strings.HasPrefix(p, prefix) {
			p = strings.TrimPrefix(p, prefix)
			break
		}
	}
	if p == "" || strings.Contains(p, "://") {
		return "", fmt.Errorf("csi address %q: want a unix socket path", address)
	}
	return p, nil
}

// WaitForSocket polls until path exists (the driver creates it when it
// starts), logging every 10 s, or ctx ends.
func WaitForSocket(ctx context.Context, l *Logger, path string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if time.Since(last) > 10*time.Second {
			l.Printf("still waiting for the CSI socket %s", path)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the CSI socket %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// Dial waits for the socket at address and returns a client connection.
func Dial(ctx context.Context, l *Logger, address string) (*grpc.ClientConn, error) {
	path, err := SocketPath(address)
	if err != nil {
		return nil, err
	}
	if err := WaitForSocket(ctx, l, path); err != nil {
		return nil, err
	}
	return grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// DriverName asks the driver for its name (GetPluginInfo), retrying every
// timeout until it answers or ctx ends: the socket can exist before the
// driver serves on it.
func DriverName(ctx context.Context, l *Logger, conn *grpc.ClientConn, timeout time.Duration) (string, error) {
	client := csi.NewIdentityClient(conn)
	for {
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := client.GetPluginInfo(callCtx, &csi.GetPluginInfoRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			if resp.GetName() == "" {
				return "", errors.New("GetPluginInfo returned an empty driver name")
			}
			return resp.GetName(), nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("GetPluginInfo: %w", err)
		}
		l.V(2, "GetPluginInfo: %v (retrying)", err)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("GetPluginInfo: %w", err)
		case <-time.After(timeout):
		}
	}
}
