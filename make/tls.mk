# The TLS profile (pkg/tlsprofile, docs/tls.md): one place for the versions
# and cipher suites of every TLS server and client of the project. Included
# by the top-level Makefile, which defines GO.
#
# The handshake scans run in test-unit and test-demo-apps already; test-tls
# runs just them, for a security review. They use openssl s_client as a
# second, independent client: OPENSSL, else openssl on PATH.

# openssl comes with Debian's ca-certificates (it depends on it), so most
# machines have it; where it is missing, the openssl target unpacks the
# distribution's current package into bin/ (hack/install-deb.sh, as for
# shellcheck), using the system's libssl3. Debian
# replaces openssl's version with every security update, so it is not
# pinned: the scans need an s_client that speaks TLS 1.0-1.3, which every
# OpenSSL 3 does.
OPENSSL ?= $(or $(wildcard $(BIN)/openssl),$(shell command -v openssl 2>/dev/null),$(BIN)/openssl)
export OPENSSL

.PHONY: openssl
openssl: ## Make sure an openssl binary exists (system one, else Debian's package unpacked into bin/).
	@if "$(OPENSSL)" version >/dev/null 2>&1; then echo "openssl: $$("$(OPENSSL)" version)"; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	hack/install-deb.sh "$$tmp/root" openssl; \
	mkdir -p "$(BIN)"; install -m 0755 "$$tmp/root/usr/bin/openssl" "$(BIN)/openssl"; \
	"$(BIN)/openssl" version

.PHONY: test-tls
test-tls: openssl ## Scan the webhook's and demo apps' TLS servers suite by suite, with Go's client and openssl s_client.
	$(GO) test -count=1 -run 'Intermediate|CipherSuites|Apply' ./pkg/tlsprofile/... ./pkg/webhook/ ./demo-apps/certs/
