package app

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mtls-demo/mtls-webhook/demo-apps/certs"
)

// drainDelay is how long a replaced transport keeps its idle connections:
// requests that were in flight at reload time finish on their old
// connection, which is then closed instead of being reused.
const drainDelay = 2 * time.Second

// upstream is an HTTP client whose connections never outlive the certificate
// they were opened with. On reload it starts a fresh transport (so the very
// next request handshakes with the new certificate) and closes the old
// transport's idle connections, then once more after in-flight requests had
// time to finish. CloseIdleConnections alone would leave connections that
// were busy during the reload in the pool with the old certificate.
type upstream struct {
	tlsConfig *tls.Config // nil in plain mode
	timeout   time.Duration
	cur       atomic.Pointer[http.Client]
}

func newUpstream(tlsConfig *tls.Config, timeout time.Duration, src *certs.Source) *upstream {
	u := &upstream{tlsConfig: tlsConfig, timeout: timeout}
	u.cur.Store(u.newClient())
	if src != nil {
		src.OnReload(func(*certs.Bundle) { u.rotate() })
	}
	return u
}

func (u *upstream) newClient() *http.Client {
	tr := &http.Transport{
		// Pods call their peers directly; an HTTP(S)_PROXY in the image's
		// environment must not reroute (or terminate) the mTLS hop.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     u.tlsConfig,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: u.timeout}
}

// client returns the client for the certificate currently in service.
func (u *upstream) client() *http.Client { return u.cur.Load() }

func (u *upstream) rotate() {
	old := u.cur.Swap(u.newClient())
	old.CloseIdleConnections()
	time.AfterFunc(drainDelay, old.CloseIdleConnections)
}

// close drops every idle connection, for shutdown.
func (u *upstream) close() { u.cur.Load().CloseIdleConnections() }
