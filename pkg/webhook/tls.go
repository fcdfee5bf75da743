package webhook

import (
	"crypto/tls"

	"github.com/mtls-demo/mtls-webhook/pkg/tlsprofile"
)

// serverTLS adjusts the webhook server's TLS configuration: the versions and
// cipher suites of the intermediate profile (package tlsprofile), and
// HTTP/1.1 only. The API server calls webhooks over HTTP/1.1 anyway, and
// HTTP/2 would only add attack surface (rapid reset, CVE-2023-44487, and its
// kin).
func serverTLS(c *tls.Config) {
	tlsprofile.Apply(c)
	c.NextProtos = []string{"http/1.1"}
}
