# cert-manager's components for the local cluster: launchers around the
# cert-manager v1.19.2 library packages (hack/tools/certmanager). They stand in
# for upstream's controller, cainjector, webhook and startupapicheck binaries,
# whose nested cmd modules the module proxy here does not serve, and accept
# every argument cert-manager's own Helm chart passes them.

CERTMANAGER_TOOLS      := $(CURDIR)/hack/tools/certmanager
CERTMANAGER_COMPONENTS := controller cainjector webhook startupapicheck
CERTMANAGER_BINS       := $(addprefix $(BIN)/cert-manager-,$(CERTMANAGER_COMPONENTS))
# Staleness: a binary is rebuilt when any non-test source of the tools
# module, its go.mod or go.sum is newer (go build's cache makes that cheap).
CERTMANAGER_SRCS       := $(shell find $(CERTMANAGER_TOOLS) -name '*.go' -not -name '*_test.go') \
                          $(CERTMANAGER_TOOLS)/go.mod $(CERTMANAGER_TOOLS)/go.sum

$(CERTMANAGER_BINS): $(BIN)/cert-manager-%: $(CERTMANAGER_SRCS)
	@mkdir -p "$(BIN)"
	cd "$(CERTMANAGER_TOOLS)" && $(GO) build -o "$@" ./cmd/$*

.PHONY: certmanager-bins
certmanager-bins: $(CERTMANAGER_BINS) ## Build the cert-manager launchers into bin/cert-manager-{controller,cainjector,webhook,startupapicheck} (skips when up to date).

.PHONY: test-certmanager
# $(BIN)/helm, not $(HELM): this file is read before make/helm.mk defines it.
test-certmanager: certmanager-bins $(BIN)/helm k8s-bins csi-driver-bin ## Run the cert-manager launchers against a real API server behind cert-manager's chart args and RBAC; check both charts' args.
	cd "$(CERTMANAGER_TOOLS)" && CERT_MANAGER_BIN_DIR="$(BIN)" HELM="$(BIN)/helm" KUBEBUILDER_ASSETS="$(BIN)" \
	  $(GO) test -count=1 -v ./...

