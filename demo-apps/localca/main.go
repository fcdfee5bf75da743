// Command localca plays the cert-manager CSI driver on a laptop: it keeps a
// local CA under DIR/ca and writes a certificate directory per app
// (DIR/backend, DIR/frontend, DIR/client) with the driver's layout, tls.crt,
// tls.key and ca.crt as symlinks through an atomically swapped "..data". With
// -every it re-issues the leaves periodically so hot reload can be watched.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/pki"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localca:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("localca", flag.ContinueOnError)
	dir := fs.String("dir", ".run/mtls", "output directory")
	names := fs.String("apps", "backend,frontend,client", "comma-separated apps to issue for")
	trust := fs.String("trust-domain", "cluster.local", "SPIFFE trust domain")
	ns := fs.String("namespace", "demo", "namespace used in the SPIFFE IDs")
	every := fs.Duration("every", 0, "re-issue the leaves this often; 0 issues once and exits")
	duration := fs.Duration("for", 0, "with -every, stop after this long; 0 runs until interrupted")
	lifetime := fs.Duration("lifetime", time.Hour, "leaf certificate lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	apps := strings.Split(*names, ",")
	for _, a := range apps {
		if a == "" || strings.ContainsAny(a, "/\\. ") {
			return fmt.Errorf("-apps=%q: want simple names like backend,frontend,client", *names)
		}
	}
	if *every < 0 || *duration < 0 || *lifetime <= 0 {
		return errors.New("-every and -for must not be negative, -lifetime must be positive")
	}
	ca, err := loadOrCreateCA(filepath.Join(*dir, "ca"))
	if err != nil {
		return err
	}
	issue := func(round int) error {
		for _, a := range apps {
			leaf, err := ca.Issue(pki.LeafSpec{
				CommonName: a,
				URIs:       []string{fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", *trust, *ns, a)},
				DNSNames:   []string{"localhost", a, a + "-svc"},
				IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
				NotAfter:   time.Now().Add(*lifetime),
			})
			if err != nil {
				return err
			}
			if err := pki.WriteAtomic(filepath.Join(*dir, a), pki.Files{Cert: leaf.CertPEM, Key: leaf.KeyPEM, CA: ca.CertPEM}); err != nil {
				return err
			}
			fmt.Printf("localca: round %d: %s serial %X\n", round, a, leaf.Cert.SerialNumber)
		}
		return nil
	}
	if err := issue(1); err != nil {
		return err
	}
	if *every == 0 {
		return nil
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	for round := 2; ; round++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := issue(round); err != nil {
				return err
			}
		}
	}
}

func loadOrCreateCA(dir string) (*pki.CA, error) {
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(keyFile); err == nil {
		return pki.LoadCA(certFile, keyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	ca, err := pki.NewCA("mtls-demo local CA", 30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := ca.SaveCA(certFile, keyFile); err != nil {
		return nil, err
	}
	return ca, nil
}
