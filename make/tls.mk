# The TLS profile (pkg/tlsprofile, docs/tls.md): one place for the versions
# and cipher suites of every TLS server and client of the project. Included
# by the top-level Makefile, which defines GO.
#
# The handshake scans run in test-unit and test-demo-apps already; test-tls
# runs just them, for a security review. They use openssl s_client as a
# second, independent client: OPENSSL, else openssl on PATH.

OPENSSL ?= $(shell command -v openssl)

.PHONY: test-tls
test-tls: ## Scan the webhook's and demo apps' TLS servers suite by suite, with Go's client and openssl s_client.
	@test -n "$(OPENSSL)" || { echo "test-tls: no openssl on PATH; install it (apt-get install openssl) or set OPENSSL=/path/to/openssl"; exit 1; }
	OPENSSL="$(OPENSSL)" $(GO) test -count=1 -run 'Intermediate|CipherSuites|Apply' ./pkg/tlsprofile/... ./pkg/webhook/ ./demo-apps/certs/
