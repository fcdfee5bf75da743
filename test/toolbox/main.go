// Command toolbox is the e2e suite's own tool image: what the suite used to
// take from curl and netshoot images, built here from this module so that no
// image is ever pulled. Two subcommands:
//
//	toolbox fetch [flags] URL    an HTTP(S) request, curl-style exit codes
//	toolbox capture [flags]      count what crosses the node's interfaces
//
// fetch prints "HTTP <code>" and the body. Its exit codes follow curl's so
// that the suite reads them the same way: 0 success, 6 name not resolved,
// 7 connection refused, 22 HTTP status >= 400 with --fail, 28 timeout,
// 35 TLS handshake failed, 56 failure receiving data (TLS 1.3 reports a
// missing client certificate only after the handshake).
//
// capture runs in a hostNetwork pod (privileged, as tcpdump would) and
// reads real frames from an AF_PACKET socket for --duration, optionally only
// those to the addresses in --to. It prints
// "listening on" when it starts, then PACKETS=, JSON_BODIES= (connections
// whose first bytes hold "request_id") and CLIENT_HELLOS= (connections that
// began with a TLS ClientHello).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/mtls-demo/mtls-webhook/internal/podnet"
	"github.com/mtls-demo/mtls-webhook/pkg/tlsprofile"
)

// version is stamped by the image builder (-X main.version).
var version = "dev"

func main() {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		fmt.Println("toolbox", version)
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: toolbox fetch|capture [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "fetch":
		os.Exit(fetch(os.Args[2:], os.Stdout, os.Stderr))
	case "capture":
		os.Exit(capture(os.Args[2:], os.Stdout, os.Stderr))
	default:
		fmt.Fprintf(os.Stderr, "toolbox: unknown subcommand %q: want fetch or capture\n", os.Args[1])
		os.Exit(2)
	}
}

// curl's exit codes for the failures the suite tells apart.
const (
	exitOK          = 0
	exitResolve     = 6
	exitRefused     = 7
	exitHTTPError   = 22
	exitTimeout     = 28
	exitHandshake   = 35
	exitReceive     = 56
	exitOtherFailed = 1
)

func fetch(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	certFile := fs.String("cert", "", "client certificate (PEM)")
	keyFile := fs.String("key", "", "client key (PEM)")
	caFile := fs.String("cacert", "", "CA bundle that must have signed the server (PEM)")
	insecure := fs.Bool("k", false, "do not verify the server certificate")
	method := fs.String("X", "GET", "HTTP method")
	data := fs.String("d", "", "request body (sent as application/json)")
	fail := fs.Bool("fail", false, "exit 22 on an HTTP status >= 400")
	maxTime := fs.Duration("max-time", 10*time.Second, "whole request timeout")
	retryRefused := fs.Duration("retry-refused", 0, "retry a refused connection for this long (a NetworkPolicy agent may admit a new pod's address only after it started)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "fetch: want exactly one URL")
		return 2
	}
	tlsCfg := &tls.Config{InsecureSkipVerify: *insecure} //nolint:gosec // -k, as curl's, for rogue clients that must be refused by the server
	tlsprofile.Apply(tlsCfg)
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(stderr, "fetch:", err)
			return 77 // curl: problem reading the CA cert
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "fetch: no certificate in --cacert %s\n", *caFile)
			return 77
		}
		tlsCfg.RootCAs = pool
	}
	if *certFile != "" || *keyFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "fetch:", err)
			return 58 // curl: problem with the local certificate
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
	retryUntil := time.Now().Add(*retryRefused)
	for {
		code, done := fetchOnce(client, *method, fs.Arg(0), *data, *maxTime, *fail, stdout, stderr)
		if done || code != exitRefused || time.Now().After(retryUntil) {
			return code
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// fetchOnce makes one request; done is false when it failed before any
// answer, so that the caller may retry.
func fetchOnce(client *http.Client, method, url, data string, maxTime time.Duration, fail bool, stdout, stderr io.Writer) (code int, done bool) {
	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	defer cancel()
	var body io.Reader
	if data != "" {
		body = strings.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		fmt.Fprintln(stderr, "fetch:", err)
		return 3, true // curl: URL malformed
	}
	if data != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "fetch:", err)
		return classify(err, ctx.Err()), false
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	fmt.Fprintf(stdout, "HTTP %d\n%s\n", resp.StatusCode, b)
	if err != nil {
		fmt.Fprintln(stderr, "fetch: reading the body:", err)
		return classify(err, ctx.Err()), true
	}
	if fail && resp.StatusCode >= 400 {
		return exitHTTPError, true
	}
	return exitOK, true
}

// classify maps a request error onto curl's exit code for it.
func classify(err, ctxErr error) int {
	var dnsErr *net.DNSError
	var recordErr tls.RecordHeaderError
	var alert tls.AlertError
	var certErr *tls.CertificateVerificationError
	var opErr *net.OpError
	switch {
	case ctxErr != nil || errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return exitTimeout
	case errors.As(err, &dnsErr):
		return exitResolve
	case errors.Is(err, syscall.ECONNREFUSED):
		return exitRefused
	case errors.As(err, &recordErr), errors.As(err, &certErr):
		return exitHandshake
	case errors.As(err, &alert), errors.As(err, &opErr) && opErr.Op == "remote error":
		// The server refused us after the handshake (TLS 1.3 client auth).
		return exitReceive
	case strings.Contains(err.Error(), "handshake"):
		return exitHandshake
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
		return exitReceive
	default:
		return exitOtherFailed
	}
}

func capture(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Uint("port", 8080, "TCP port of the server side")
	duration := fs.Duration("duration", 30*time.Second, "how long to capture")
	to := fs.String("to", "", "comma-separated destination addresses to keep (a pod's and its Service's); empty keeps all")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dsts, err := parseAddrs(*to)
	if err != nil {
		fmt.Fprintln(stderr, "capture:", err)
		return 2
	}
	// 4 KiB per connection: the JSON body follows the request line and
	// headers, and keep-alive connections carry many requests.
	c, err := podnet.CapturePod(os.Getpid(), uint16(*port), 4096, dsts...)
	if err != nil {
		fmt.Fprintln(stderr, "capture:", err)
		return 1
	}
	scope := "any address"
	if len(dsts) > 0 {
		scope = *to
	}
	fmt.Fprintf(stdout, "listening on all interfaces, tcp port %d to %s, for %s\n", *port, scope, *duration)
	time.Sleep(*duration)
	if err := c.Close(); err != nil {
		fmt.Fprintln(stderr, "capture:", err)
		return 1
	}
	json, hellos := Summarize(c.Conns())
	fmt.Fprintf(stdout, "PACKETS=%d\nJSON_BODIES=%d\nCLIENT_HELLOS=%d\n", c.Frames(), json, hellos)
	return 0
}

// parseAddrs reads --to: IP addresses separated by commas.
func parseAddrs(list string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("--to=%s: %q is not an IP address; want addresses such as 198.18.0.10,198.19.0.20", list, f)
		}
		out = append(out, a)
	}
	return out, nil
}

// Summarize counts connections whose first client bytes carry the demo's
// JSON, and those that began with a TLS handshake record holding a
// ClientHello (content type 22, version 3.x, handshake type 1).
func Summarize(conns [][]byte) (jsonBodies, clientHellos int) {
	for _, c := range conns {
		if bytes.Contains(c, []byte(`"request_id"`)) {
			jsonBodies++
		}
		if len(c) >= 6 && c[0] == 0x16 && c[1] == 0x03 && c[5] == 0x01 {
			clientHellos++
		}
	}
	return jsonBodies, clientHellos
}
