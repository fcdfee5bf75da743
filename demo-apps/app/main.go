package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
)

// NewLogger returns the JSON logger every demo binary writes with, so log
// lines from all three apps can be filtered by the same keys (app, serial,
// peer_identity, peer_serial).
func NewLogger(w io.Writer, version string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, nil)).With("version", version)
}

// Main runs a backend or frontend from the environment until ctx ends. The
// returned error is what the process prints before exiting non-zero; it names
// the variable and value at fault.
func Main(ctx context.Context, role Role, version string, getenv func(string) string, logOut io.Writer) error {
	log := NewLogger(logOut, version)
	opts, err := FromEnv(role, getenv)
	if err != nil {
		return fmt.Errorf("%s: configuration: %w", role, err)
	}
	svc, err := New(opts, log)
	if err != nil {
		return fmt.Errorf("%s: %w", role, err)
	}
	lc := net.ListenConfig{}
	mainLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort(opts.ListenHost, strconv.Itoa(opts.Port)))
	if err != nil {
		return fmt.Errorf("%s: listen on %s=%d: %w", role, EnvPort, opts.Port, err)
	}
	var opsLn net.Listener
	if opts.OpsPort != 0 {
		opsLn, err = lc.Listen(ctx, "tcp", net.JoinHostPort(opts.ListenHost, strconv.Itoa(opts.OpsPort)))
		if err != nil {
			mainLn.Close()
			return fmt.Errorf("%s: listen on %s=%d: %w", role, EnvOpsPort, opts.OpsPort, err)
		}
	}
	if err := svc.Run(ctx, mainLn, opsLn); err != nil {
		return fmt.Errorf("%s: %w", role, err)
	}
	return nil
}
