# Checks of the images, scripts and e2e suite that need no Docker or cluster
# (make test). See docs/kind-e2e.md.

# shellcheck from Debian's package (the npm registry and GitHub downloads are
# out of reach here): hack/install-deb.sh downloads and unpacks the pinned
# version, and only usr/bin/shellcheck is kept, so nothing is installed
# system-wide. Needs a Debian/Ubuntu apt with this version available
# (bookworm: 0.9.0-1) and the runtime libraries libgmp10 and libffi8.
SHELLCHECK_VERSION := 0.9.0
SHELLCHECK_DEB     := 0.9.0-1
SHELLCHECK         := $(BIN)/shellcheck

# Rebuilt when the installed one does not report the pinned version.
.PHONY: shellcheck
shellcheck: ## Install shellcheck (pinned Debian package, unpacked into bin/).
	@if "$(SHELLCHECK)" --version 2>/dev/null | grep -F "version: $(SHELLCHECK_VERSION)" >/dev/null; then \
	  echo "bin/shellcheck: $(SHELLCHECK_VERSION) already installed"; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	hack/install-deb.sh "$$tmp/root" "shellcheck=$(SHELLCHECK_DEB)"; \
	mkdir -p "$(BIN)"; install -m 0755 "$$tmp/root/usr/bin/shellcheck" "$(SHELLCHECK)"; \
	"$(SHELLCHECK)" --version | grep -F "version: $(SHELLCHECK_VERSION)"

# Every script under hack/ (find, so a new script is checked without editing this file).
HACK_SCRIPTS = $(shell find hack -name '*.sh' -not -path '*/node_modules/*' | sort)

.PHONY: test-checks
test-checks: shellcheck ## Check without Docker: e2e suite compiles (vet), hack/ scripts (bash -n, shellcheck), Dockerfiles' go build.
	$(GO) vet -tags e2e ./test/e2e/...
	@unformatted="$$(gofmt -l test/e2e)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	@for s in $(HACK_SCRIPTS); do bash -n "$$s" || { echo "bash -n failed: $$s"; exit 1; }; done; echo "bash -n: $(words $(HACK_SCRIPTS)) scripts OK"
	$(SHELLCHECK) --severity=style --external-sources $(HACK_SCRIPTS)
	@! grep -n 'bin/kind/' $(HACK_SCRIPTS) || { echo "the scripts above use bin/kind/ as a directory: bin/kind is the kind binary (use bin/kind-e2e/)"; exit 1; }
	hack/check-dockerfile.sh Dockerfile VERSION=$(VERSION)
	@for app in $(DEMO_IMAGE_APPS); do hack/check-dockerfile.sh demo-apps/Dockerfile APP="$$app" VERSION=$(VERSION); done

